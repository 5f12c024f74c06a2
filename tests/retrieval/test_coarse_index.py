"""Coarse-stage indexes of rsitr.retrieval.coarse_index: exactness, recall, persistence, registry."""

from __future__ import annotations

import numpy as np
import pytest

from rsitr.errors import ConfigError
from rsitr.retrieval.coarse_index import COARSE_INDEXES, load_coarse_index, make_coarse_index, sort_results
from rsitr.retrieval.hamming_search import stable_topk

K = 10


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered():
    """2,000 unit vectors in 40 clusters (D = 32) and 100 noisy queries near gallery items."""
    rng = np.random.default_rng(0)
    centers = _unit(rng.standard_normal((40, 32)))
    gallery = _unit(centers[rng.integers(0, 40, 2000)] + 0.15 * rng.standard_normal((2000, 32)))  # [N, D]
    queries = _unit(gallery[rng.choice(2000, 100, replace=False)] + 0.05 * rng.standard_normal((100, 32)))  # [Q, D]
    return gallery, queries


def _recall(ids: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(ids, truth)]))


def test_exact_equals_numpy_with_stable_ties():
    """Small-integer vectors: every inner product is exact, and many tie (incl. duplicate rows)."""
    rng = np.random.default_rng(1)
    gallery = rng.integers(-2, 3, (300, 8)).astype(np.float32)  # [N, D]
    gallery[150:200] = gallery[:50]  # exact duplicates: ties across the k-th place
    queries = rng.integers(-2, 3, (40, 8)).astype(np.float32)
    brute = queries @ gallery.T  # [Q, N] exact integers
    for k in (1, K, 37):
        scores, ids = make_coarse_index("exact", threads=1).build(gallery).search(queries, k)
        want = stable_topk(brute, k)  # [Q, k] score desc, ties by ascending index
        np.testing.assert_array_equal(ids, want)
        np.testing.assert_array_equal(scores, np.take_along_axis(brute, want, 1))


def test_exact_matches_numpy_on_unit_vectors(clustered):
    gallery, queries = clustered
    scores, ids = make_coarse_index("exact", threads=1).build(gallery).search(queries, K)
    brute = queries @ gallery.T
    np.testing.assert_array_equal(ids, stable_topk(brute, K))
    np.testing.assert_allclose(scores, np.take_along_axis(brute, ids, 1), atol=1e-5)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and scores.shape == ids.shape == (100, K)


@pytest.mark.parametrize(
    "name, params",
    [("hnsw", {"m": 16, "ef_search": 64}), ("ivf", {"nlist": 32, "nprobe": 8}), ("hash", {"bits": 128, "candidates": 200})],
)
def test_approximate_recall(clustered, name, params):
    gallery, queries = clustered
    _, truth = make_coarse_index("exact", threads=1).build(gallery).search(queries, K)
    scores, ids = make_coarse_index(name, threads=1, **params).build(gallery).search(queries, K)
    assert _recall(ids, truth) >= 0.9
    keys = np.lexsort((ids, -scores), axis=-1)  # rows are already in (score desc, id asc) order
    np.testing.assert_array_equal(keys, np.broadcast_to(np.arange(K), keys.shape))


@pytest.mark.parametrize(
    "name, params",
    [("exact", {}), ("hnsw", {"m": 8}), ("ivf", {"nlist": 16, "nprobe": 4}), ("hash", {}), ("hash", {"candidates": 50})],
)
def test_save_load_round_trip(clustered, tmp_path, name, params):
    gallery, queries = clustered
    index = make_coarse_index(name, threads=1, **params).build(gallery)
    index.save(tmp_path / name)
    loaded = load_coarse_index(tmp_path / name)
    assert type(loaded) is type(index) and loaded.params() == index.params()
    for got, want in zip(loaded.search(queries, K), index.search(queries, K)):
        np.testing.assert_array_equal(got, want)
    assert index.memory_bytes > 0


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ConfigError) as err:
        make_coarse_index("annoy")
    message = str(err.value)
    assert "'annoy'" in message
    for name in COARSE_INDEXES:
        assert name in message


def test_sort_results_puts_missing_last():
    scores = np.array([[0.5, 0.9, 0.5, -3.4e38]], np.float32)
    ids = np.array([[7, 3, 2, -1]], np.int64)
    s, i = sort_results(scores, ids)
    np.testing.assert_array_equal(i, [[3, 2, 7, -1]])
    assert s[0, -1] == -np.inf
