"""Tests for rsitr.data.dedup: exact sub-quadratic pHash pair search, clusters, cache, report."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rsitr.data import dedup
from rsitr.data.dedup import (
    HashStats,
    block_layout,
    cluster_images,
    compute_hashes,
    connected_clusters,
    dedup_report,
    find_near_duplicate_pairs,
    hamming_distance,
    phash_file,
)
from rsitr.errors import DataError

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _flip_bits(rng: np.random.Generator, h: np.uint64, k: int) -> np.uint64:
    """``h`` with exactly ``k`` distinct random bits flipped."""
    mask = 0
    for bit in rng.choice(64, size=k, replace=False).tolist():
        mask |= 1 << bit
    return np.uint64(int(h) ^ mask)


def _brute_force_pairs(h: np.ndarray, max_distance: int) -> np.ndarray:
    """O(n^2) reference: every (i, j), i < j, within max_distance, sorted."""
    i, j = np.triu_indices(h.size, k=1)  # [n(n-1)/2] each
    close = hamming_distance(h[i], h[j]) <= max_distance
    return np.stack([i[close], j[close]], axis=1).astype(np.int64)


def _planted(rng: np.random.Generator, n: int, max_distance: int):
    """``n`` random hashes with planted pairs at each distance 0..max_distance+1.

    Returns ``(hashes, near, far)``: ``near`` are planted pairs within max_distance,
    ``far`` planted pairs at exactly max_distance + 1.
    """
    h = rng.integers(0, 2**64, size=n, dtype=np.uint64)  # [n] uint64
    sources = rng.permutation(n // 2)  # planted copies overwrite the second half
    near, far = [], []
    target = n // 2
    for rep in range(5):
        for k in range(max_distance + 2):
            src = int(sources[rep * (max_distance + 2) + k])
            h[target] = _flip_bits(rng, h[src], k)
            (near if k <= max_distance else far).append((src, target))
            target += 1
    # a tight family around one centre: many pairs at mixed distances 0..2d, one big bucket
    centre = h[0]
    for _ in range(60):
        h[target] = _flip_bits(rng, centre, int(rng.integers(0, 2 * max_distance + 1)))
        target += 1
    return h, near, far


# --------------------------------------------------------------------------------------
# find_near_duplicate_pairs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_distance", "n_blocks"),
    [(2, None), (2, 4), (3, None), (3, 4), (5, None), (5, 8)],
)
def test_pairs_equal_brute_force(max_distance: int, n_blocks: int | None) -> None:
    rng = np.random.default_rng(1000 + max_distance)
    h, near, far = _planted(rng, 2000, max_distance)
    expected = _brute_force_pairs(h, max_distance)
    got = find_near_duplicate_pairs(h, max_distance, n_blocks=n_blocks)

    assert got.dtype == np.int64 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    # the reference itself covers every distance 0..max_distance (the test is not vacuous)
    dist = hamming_distance(h[expected[:, 0]], h[expected[:, 1]])
    assert set(dist.tolist()) == set(range(max_distance + 1))
    found = set(map(tuple, got.tolist()))
    assert all((min(p), max(p)) in found for p in near)
    assert not any((min(p), max(p)) in found for p in far)
    # all-distinct hashes in shuffled order (the no-identical-hash fast path)
    distinct = rng.permutation(np.unique(h))
    np.testing.assert_array_equal(
        find_near_duplicate_pairs(distinct, max_distance, n_blocks=n_blocks),
        _brute_force_pairs(distinct, max_distance),
    )


def test_pairs_tiny_chunks_and_big_buckets() -> None:
    """Many identical hashes and a crowded block value, with chunks far smaller than a bucket."""
    rng = np.random.default_rng(7)
    h = rng.integers(0, 2**64, size=600, dtype=np.uint64)
    h[:150] = h[0]  # 150 identical hashes -> 11,175 distance-0 pairs
    h[150:400] &= np.uint64(0x00000000003FFFFF)  # 250 hashes whose top 42 bits are all zero
    h[400:420] = h[150]  # identical copies of a member of the crowded family
    expected = _brute_force_pairs(h, 2)
    for chunk_size in (1, 13, 10_000):
        np.testing.assert_array_equal(find_near_duplicate_pairs(h, 2, chunk_size=chunk_size), expected)
    assert (expected[:, 0] < expected[:, 1]).all()
    assert len(expected) > 150 * 149 // 2


def test_pairs_output_is_sorted_unique_upper_triangle() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**64, size=40, dtype=np.uint64)
    h = np.concatenate([base, base, base ^ np.uint64(1)])[rng.permutation(120)]
    got = find_near_duplicate_pairs(h, 1)
    assert (got[:, 0] < got[:, 1]).all()
    keys = got[:, 0] * len(h) + got[:, 1]
    assert (np.diff(keys) > 0).all()  # strictly increasing: sorted and unique
    assert len(got) == 40 * 3  # each triple {x, x, x^1} is 3 pairs


def test_pairs_edge_cases_and_validation() -> None:
    assert find_near_duplicate_pairs(np.array([], dtype=np.uint64)).shape == (0, 2)
    assert find_near_duplicate_pairs(np.array([5], dtype=np.uint64)).shape == (0, 2)
    # Python ints above 2**63 and bit-reinterpreted int64 give the same answer
    big = [2**64 - 1, 2**64 - 2, 0]
    np.testing.assert_array_equal(find_near_duplicate_pairs(big, 1), [[0, 1]])
    np.testing.assert_array_equal(find_near_duplicate_pairs(np.array([-1, -2, 0], dtype=np.int64), 1), [[0, 1]])
    with pytest.raises(ValueError, match="n_blocks"):
        find_near_duplicate_pairs(np.zeros(3, np.uint64), 3, n_blocks=3)
    with pytest.raises(ValueError, match="max_distance"):
        find_near_duplicate_pairs(np.zeros(3, np.uint64), 64)
    with pytest.raises(TypeError):
        find_near_duplicate_pairs(np.zeros(3, np.float64), 2)
    with pytest.raises(ValueError, match="1-D"):
        find_near_duplicate_pairs(np.zeros((2, 2), np.uint64), 2)


@pytest.mark.parametrize(("max_distance", "n_blocks", "widths"), [(2, None, [22, 21, 21]), (2, 4, [16] * 4), (0, None, [64])])
def test_block_layout_partitions_the_64_bits(max_distance: int, n_blocks: int | None, widths: list[int]) -> None:
    layout = block_layout(max_distance, n_blocks)
    assert [bin(mask).count("1") for _, mask in layout] == widths
    covered = 0
    for shift, mask in layout:
        assert covered & (mask << shift) == 0  # disjoint
        covered |= mask << shift
    assert covered == 2**64 - 1


def test_popcount_lookup_table_matches_python() -> None:
    x = np.random.default_rng(0).integers(0, 2**64, size=500, dtype=np.uint64)
    x[:3] = [0, 2**64 - 1, 2**63]
    expected = [bin(v).count("1") for v in x.tolist()]
    assert dedup._popcount64_lut(x).tolist() == expected
    assert dedup._popcount64(x).tolist() == expected


# --------------------------------------------------------------------------------------
# clusters
# --------------------------------------------------------------------------------------


def test_union_find_chain_is_one_cluster() -> None:
    # a-b, b-c chained -> one cluster; d-e separate; f alone
    np.testing.assert_array_equal(connected_clusters(3, np.array([[0, 1], [1, 2]])), [0, 0, 0])
    clusters = connected_clusters(6, np.array([[4, 5], [1, 4], [2, 3]]))
    np.testing.assert_array_equal(clusters, [0, 1, 2, 2, 1, 1])


def test_cluster_id_is_smallest_member_whatever_the_pair_order() -> None:
    # the same graph given in any edge order and direction gives the same labels
    edges = np.array([[4, 3], [3, 2], [4, 1]])
    for perm in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        np.testing.assert_array_equal(connected_clusters(5, edges[perm]), [0, 1, 1, 1, 1])
        np.testing.assert_array_equal(connected_clusters(5, edges[perm][:, ::-1]), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(connected_clusters(0, np.zeros((0, 2))), np.zeros(0))
    np.testing.assert_array_equal(connected_clusters(3, np.zeros((0, 2))), [0, 1, 2])
    assert connected_clusters(4, np.array([[1, 1], [2, 3], [3, 2]])).tolist() == [0, 1, 2, 2]  # loops, repeats
    with pytest.raises(ValueError, match="pair indices"):
        connected_clusters(3, np.array([[0, 3]]))


def test_connected_clusters_match_a_reference_on_random_graphs() -> None:
    """Labels equal a plain BFS reference (smallest member of each component) on random graphs."""
    rng = np.random.default_rng(0)
    for n in (1, 7, 50):
        edges = rng.integers(0, n, size=(n, 2))
        adj: dict[int, set[int]] = {i: set() for i in range(n)}
        for i, j in edges.tolist():
            adj[i].add(j)
            adj[j].add(i)
        expected = [-1] * n
        for root in range(n):
            if expected[root] < 0:
                stack = [root]
                while stack:
                    node = stack.pop()
                    if expected[node] < 0:
                        expected[node] = root
                        stack.extend(adj[node])
        assert connected_clusters(n, edges).tolist() == expected


# --------------------------------------------------------------------------------------
# hashing and cache (synthetic images: no ../shared needed)
# --------------------------------------------------------------------------------------


def _write_noise_png(path: Path, seed: int) -> Path:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_phash_file_matches_imagehash(tmp_path: Path) -> None:
    import imagehash
    from PIL import Image

    path = _write_noise_png(tmp_path / "a.png", 0)
    assert f"{phash_file(path):016x}" == str(imagehash.phash(Image.open(path)))


def test_missing_or_corrupt_image_raises_data_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    with pytest.raises(DataError, match="nope.jpg"):
        phash_file(missing)
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        compute_hashes([_write_noise_png(tmp_path / "ok.png", 1), corrupt], workers=1)
    with pytest.raises(DataError, match="broken.jpg"):  # also through the process pool
        compute_hashes([_write_noise_png(tmp_path / "ok.png", 1), corrupt], workers=2)


def test_cache_hits_misses_and_rehash_of_modified_file(tmp_path: Path) -> None:
    paths = [_write_noise_png(tmp_path / f"{i}.png", i) for i in range(6)]
    cache = tmp_path / "cache" / "phash.json"

    first = HashStats()
    h1 = compute_hashes(paths, workers=2, cache_path=cache, stats=first)
    assert (first.hits, first.misses) == (0, 6)
    assert h1.dtype == np.uint64 and h1.tolist() == [phash_file(p) for p in paths]
    assert cache.is_file()

    second = HashStats()
    h2 = compute_hashes(paths, workers=2, cache_path=cache, stats=second)
    assert (second.hits, second.misses) == (6, 0)
    np.testing.assert_array_equal(h2, h1)

    _write_noise_png(paths[2], 99)  # modify one file in place
    shutil.copy(paths[0], tmp_path / "renamed.png")  # same content, new name
    third = HashStats()
    h3 = compute_hashes([*paths, tmp_path / "renamed.png"], workers=1, cache_path=cache, stats=third)
    assert (third.hits, third.misses) == (6, 1)
    assert h3[2] == phash_file(paths[2]) != h1[2]
    assert h3[6] == h1[0]


def test_unusable_cache_file_is_ignored_and_rewritten(tmp_path: Path) -> None:
    paths = [_write_noise_png(tmp_path / f"{i}.png", i) for i in range(2)]
    cache = tmp_path / "phash.json"
    cache.write_text("{not json")
    stats = HashStats()
    compute_hashes(paths, workers=1, cache_path=cache, stats=stats)
    assert stats.misses == 2
    assert len(json.loads(cache.read_text())["entries"]) == 2


# --------------------------------------------------------------------------------------
# real images: re-encoded / resized copies cluster with their originals
# --------------------------------------------------------------------------------------


def _jpeg75(img) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def test_real_image_copies_cluster_with_originals(shared_datasets: Path, tmp_path: Path) -> None:
    """RSICD (224 px JPEG) and UCM (256 px TIFF) samples.

    Variants: JPEG quality-75 re-encode, and a resize to the other benchmark's native size
    (224 <-> 256, bicubic; how RSICD and RSITMD store the same scene) then JPEG-75.
    """
    from PIL import Image

    samples = shared_datasets / "samples"
    originals = sorted((samples / "rsicd").glob("*.jpg")) + sorted((samples / "ucm").glob("*.tif"))
    assert len(originals) >= 10
    copies, source = [], []
    for k, path in enumerate(originals):
        with Image.open(path) as img:
            img.load()
        other = 256 if img.size == (224, 224) else 224
        variants = {
            "q75": _jpeg75(img),
            f"r{other}q75": _jpeg75(img.resize((other, other), Image.BICUBIC)),
        }
        for name, data in variants.items():
            out = tmp_path / f"{k:03d}_{name}.jpg"
            out.write_bytes(data)
            copies.append(out)
            source.append(k)

    clusters = cluster_images([*originals, *copies], max_distance=2)
    n = len(originals)
    assert clusters[:n] == list(range(n)), "distinct real images merged"
    assert clusters[n:] == source, "a re-encoded/resized copy did not join its original"


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------


def test_dedup_report_counts_within_and_across_datasets() -> None:
    h = np.array([0b0, 0b1, 0b11, 0xFFFF_0000, 0xF0F0_F0F0_0000_0000, 0xF0F0_F0F0_0000_0000], dtype=np.uint64)
    keys = ["a/0", "a/1", "b/0", "b/1", "b/2", "c/0"]
    datasets = ["a", "a", "b", "b", "b", "c"]
    pairs = find_near_duplicate_pairs(h, 2)  # (0,1) d1, (0,2) d2, (1,2) d1, (4,5) d0
    clusters = connected_clusters(len(h), pairs)
    report = dedup_report(keys, datasets, clusters, pairs, h)

    json.dumps(report)  # JSON-able
    assert report["n_images"] == 6 and report["n_pairs"] == 4
    assert report["n_clusters"] == 3 and report["n_redundant_images"] == 3
    assert report["distance_histogram"] == {"0": 1, "1": 2, "2": 1}
    assert report["datasets"]["a"] == {"images": 2, "clusters": 1, "redundant_images": 1, "duplicate_pairs": 1}
    assert report["datasets"]["b"] == {"images": 3, "clusters": 3, "redundant_images": 0, "duplicate_pairs": 0}
    overlaps = {tuple(o["datasets"]): o for o in report["overlaps"]}
    assert overlaps[("a", "b")] == {"datasets": ["a", "b"], "pairs": 2, "shared_clusters": 1, "images": {"a": 2, "b": 1}}
    assert overlaps[("b", "c")]["pairs"] == 1 and overlaps[("a", "c")]["pairs"] == 0
    first = report["examples"][0]  # cross-dataset pairs first, closest first
    assert (first["a"], first["b"], first["distance"]) == ("b/2", "c/0", 0)
    assert report["examples"][-1] == {"a": "a/0", "b": "a/1", "dataset_a": "a", "dataset_b": "a", "distance": 1}
    assert len(dedup_report(keys, datasets, clusters, pairs, h, max_examples=2)["examples"]) == 2
    with pytest.raises(ValueError, match="one entry per image"):
        dedup_report(keys[:-1], datasets, clusters, pairs, h)
