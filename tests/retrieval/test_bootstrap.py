"""The paired bootstrap over test images, the per-query ranks file and the twin outcomes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsitr.config import ReportParams
from rsitr.retrieval.bootstrap import (
    bootstrap_mr,
    bootstrap_twin_acc,
    difference_interval,
    percentile_interval,
    resample_indices,
    resample_weights,
)
from rsitr.retrieval.metrics import caption_image_from_counts, query_ranks, retrieval_metrics
from rsitr.retrieval.ranks import QueryRanks, TwinOutcomes, load_ranks, save_ranks
from rsitr.retrieval.twins import twin_accuracy, twin_outcomes
from rsitr.tracking.uncertainty import paired_difference, section_samples

# 5 images owning 2, 1, 3, 1, 2 captions; first-match ranks chosen by hand.
OWNER = caption_image_from_counts([2, 1, 3, 1, 2])
I2T = np.array([0, 4, 12, 1, 7])
T2I = np.array([0, 3, 5, 0, 9, 2, 0, 1, 6])


def _hand_mr(i2t: np.ndarray, t2i: np.ndarray, owner: np.ndarray, drawn: list[int]) -> float:
    """mR of one resample written out: the drawn images, each with all its captions."""
    recalls = []
    for k in (1, 5, 10):
        recalls.append(100.0 * sum(1 for i in drawn if i2t[i] < k) / len(drawn))
    for k in (1, 5, 10):
        captions = [j for i in drawn for j in range(len(owner)) if owner[j] == i]
        recalls.append(100.0 * sum(1 for j in captions if t2i[j] < k) / len(captions))
    return sum(recalls) / 6


def test_bootstrap_ci_equals_a_hand_computation_on_a_small_rank_table() -> None:
    samples, seed = 200, 7
    indices = np.random.default_rng(seed).integers(0, 5, size=(samples, 5))  # the documented seed semantics
    assert np.array_equal(resample_indices(5, samples, seed), indices)
    hand = np.array([_hand_mr(I2T, T2I, OWNER, list(row)) for row in indices])
    ranks = QueryRanks(i2t=I2T, t2i=T2I, caption_image=OWNER)
    resampled = bootstrap_mr(ranks, resample_weights(indices, 5))
    np.testing.assert_allclose(resampled, hand, rtol=0, atol=1e-9)
    interval = percentile_interval(ranks.metrics()["mR"], resampled, 0.9)
    assert interval.low == pytest.approx(np.quantile(hand, 0.05), abs=1e-9)
    assert interval.high == pytest.approx(np.quantile(hand, 0.95), abs=1e-9)
    # drawing every image once is the full test set: the point estimate itself
    full = bootstrap_mr(ranks, np.ones((1, 5)))
    assert full[0] == pytest.approx(ranks.metrics()["mR"], abs=1e-9)


def test_resample_weights_count_draws() -> None:
    weights = resample_weights(np.array([[0, 0, 2], [1, 2, 1]]), 3)
    assert weights.tolist() == [[2, 0, 1], [0, 2, 1]]


def test_paired_resampling_uses_the_same_indices_for_both_rows() -> None:
    other = QueryRanks(i2t=np.array([3, 0, 0, 9, 1]), t2i=np.array([1, 0, 0, 4, 12, 0, 7, 0, 2]), caption_image=OWNER)
    base = QueryRanks(i2t=I2T, t2i=T2I, caption_image=OWNER)
    settings = ReportParams(bootstrap_samples=300, bootstrap_seed=3, confidence=0.95)
    samples = section_samples({"a": other, "b": base, "b again": base}, settings)
    indices = resample_indices(5, 300, 3)
    hand = np.array([_hand_mr(other.i2t, other.t2i, OWNER, list(r)) - _hand_mr(I2T, T2I, OWNER, list(r))
                     for r in indices])
    np.testing.assert_allclose(samples["a"].mR_samples - samples["b"].mR_samples, hand, atol=1e-9)
    difference = paired_difference(samples["a"], samples["b"], "mR", 0.95)
    assert difference.estimate == pytest.approx(other.metrics()["mR"] - base.metrics()["mR"])
    assert difference.low == pytest.approx(np.quantile(hand, 0.025)) and difference.high == pytest.approx(
        np.quantile(hand, 0.975))
    # a row against itself: zero in every resample only when both sides saw the same images
    itself = paired_difference(samples["b"], samples["b again"], "mR", 0.95)
    assert (itself.low, itself.high) == (0.0, 0.0)
    unpaired = bootstrap_mr(base, resample_weights(resample_indices(5, 300, 4), 5))
    assert difference_interval(samples["b"].mR_samples, unpaired, 0.0, 0.95).half_width > 1.0


def test_rows_of_other_images_get_no_samples() -> None:
    base = QueryRanks(i2t=I2T, t2i=T2I, caption_image=OWNER, images=tuple("abcde"))
    moved = QueryRanks(i2t=I2T, t2i=T2I, caption_image=OWNER, images=tuple("abcdx"))
    samples = section_samples({"base": base, "moved": moved}, ReportParams(bootstrap_samples=10))
    assert set(samples) == {"base"}


def test_ranks_file_gives_the_stored_metrics_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    owner = caption_image_from_counts(rng.integers(1, 6, size=40))
    scores = np.round(rng.normal(size=(40, owner.size)), 1).astype(np.float32)  # rounding makes real ties
    i2t, t2i = query_ranks(scores, owner)
    outcomes = TwinOutcomes(**twin_outcomes(scores, owner, [(0, 1), (5, 9), (20, 3)]))
    path = save_ranks(tmp_path / "toy.en.npz", QueryRanks(i2t, t2i, owner, tuple(f"img{i}" for i in range(40)),
                                                         outcomes))
    stored = load_ranks(path)
    assert stored.metrics() == retrieval_metrics(scores, owner)  # exact equality, not approx
    assert stored.images[3] == "img3" and stored.twins.accuracy() == twin_accuracy(scores, owner,
                                                                                  [(0, 1), (5, 9), (20, 3)])


def test_twin_bootstrap_resamples_pairs() -> None:
    twins = TwinOutcomes(pairs=np.array([[0, 1], [2, 3], [4, 5]]), t2i_wins=np.array([4, 1, 5]),
                         t2i_total=np.array([5, 5, 6]), i2t_wins=np.array([2, 0, 1]))
    weights = np.array([[1.0, 1.0, 1.0], [3.0, 0.0, 0.0], [0.0, 2.0, 1.0]])
    expected = [(100 * 10 / 16 + 100 * 3 / 6) / 2, (100 * 12 / 15 + 100 * 6 / 6) / 2,
                (100 * 7 / 16 + 100 * 1 / 6) / 2]
    np.testing.assert_allclose(bootstrap_twin_acc(twins, weights), expected)
    assert bootstrap_twin_acc(twins, weights)[0] == pytest.approx(twins.accuracy()["twin_acc"])


def test_bootstrap_is_fast_at_rsicd_scale() -> None:
    import time

    rng = np.random.default_rng(1)
    owner = caption_image_from_counts(np.full(1000, 5))
    rows = {f"row{r}": QueryRanks(rng.integers(0, 50, 1000), rng.integers(0, 50, 5000), owner) for r in range(12)}
    start = time.perf_counter()
    samples = section_samples(rows, ReportParams(bootstrap_samples=1000))
    assert len(samples) == 12 and time.perf_counter() - start < 10.0
