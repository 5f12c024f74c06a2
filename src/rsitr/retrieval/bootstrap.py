"""Seeded paired bootstrap of retrieval figures over test images (and over twin pairs).

Unit of resampling. A test set's images are drawn with replacement; an image carries all
its captions, so one resample weights image ``i`` by how often it was drawn (``w_i``):

* i2t R@K = ``100 * sum_i w_i [rank_i < K] / sum_i w_i``;
* t2i R@K = ``100 * sum_i w_i hits_i(K) / sum_i w_i c_i`` with ``hits_i(K)`` the captions of
  image ``i`` whose own image ranks ``< K`` and ``c_i`` its caption count;
* mR = mean of the six. Ranks are NOT recomputed inside a resample (the gallery stays the
  whole test set): the bootstrap measures how the figures vary with the choice of queries.

Seed semantics. ``resample_indices(n, samples, seed)`` is
``numpy.random.default_rng(seed).integers(0, n, size=(samples, n))``: row ``b`` is resample
``b``'s drawn image indices. Every row (variant, language, c2f or not) of a test set uses
the same matrix, so a difference of two rows is a PAIRED bootstrap (the same images in
each resample); English and Arabic captions of a test set share its images, hence its
resamples. Twin pairs are resampled the same way with the pairs as units
(``resample_indices(P, samples, seed)``).

Interval. The percentile interval: the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
quantiles (``numpy.quantile``, linear interpolation) of the resampled statistic. Everything
is vectorised: a ``[samples, N]`` weight matrix times per-image hit counts, so time and
memory are linear in the number of queries (1,000 images x 5,000 captions x 1,000 resamples
x 12 rows is one ``[1000, 1000] @ [1000, 84]`` product).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from rsitr.retrieval.ranks import QueryRanks, TwinOutcomes

__all__ = [
    "Interval",
    "bootstrap_mr",
    "bootstrap_twin_acc",
    "difference_interval",
    "percentile_interval",
    "resample_indices",
    "resample_weights",
]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def resample_indices(n: int, samples: int, seed: int) -> np.ndarray:
    """``[samples, n]`` indices drawn with replacement (see the module doc for the seed semantics)."""
    if n < 1 or samples < 1:
        raise ValueError(f"need n >= 1 and samples >= 1, got n={n}, samples={samples}")
    return np.random.default_rng(seed).integers(0, n, size=(samples, n))


def resample_weights(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` units is drawn in each resample: ``[samples, n]`` float64."""
    samples = indices.shape[0]
    flat = (np.arange(samples)[:, None] * n + indices).ravel()  # [samples * n]
    return np.bincount(flat, minlength=samples * n).reshape(samples, n).astype(np.float64)


def _per_image_hits(ranks: QueryRanks, ks: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i2t hits [N, k], t2i hits [N, k], caption counts [N]) of one evaluation."""
    n = ranks.n_images
    i2t = np.stack([(ranks.i2t < k) for k in ks], axis=1).astype(np.float64)  # [N, k]
    t2i = np.stack([np.bincount(ranks.caption_image, weights=(ranks.t2i < k), minlength=n) for k in ks],
                   axis=1)  # [N, k]
    counts = np.bincount(ranks.caption_image, minlength=n).astype(np.float64)  # [N]
    return i2t, t2i, counts


def bootstrap_mr(ranks: QueryRanks, weights: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> np.ndarray:
    """mR of each resample ``[samples]``, for image weights ``[samples, N]``."""
    if weights.shape[1] != ranks.n_images:
        raise ValueError(f"weights cover {weights.shape[1]} images, the ranks {ranks.n_images}")
    i2t, t2i, counts = _per_image_hits(ranks, ks)
    i2t_recalls = 100.0 * (weights @ i2t) / weights.sum(axis=1, keepdims=True)  # [samples, k]
    t2i_recalls = 100.0 * (weights @ t2i) / (weights @ counts)[:, None]  # [samples, k]
    return np.concatenate([i2t_recalls, t2i_recalls], axis=1).mean(axis=1)  # [samples]


def bootstrap_twin_acc(twins: TwinOutcomes, weights: np.ndarray) -> np.ndarray:
    """twin_acc (percent) of each resample ``[samples]``, for pair weights ``[samples, P]``."""
    t2i = 100.0 * (weights @ twins.t2i_wins) / (weights @ twins.t2i_total)  # [samples]
    i2t = 100.0 * (weights @ twins.i2t_wins) / (2.0 * weights.sum(axis=1))  # [samples]
    return (t2i + i2t) / 2


def percentile_interval(estimate: float, resampled: np.ndarray, confidence: float) -> Interval:
    """The percentile bootstrap interval of ``resampled`` around ``estimate``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    values = resampled[np.isfinite(resampled)]
    if values.size == 0:
        return Interval(float(estimate), float("nan"), float("nan"))
    low, high = np.quantile(values, [(1.0 - confidence) / 2, (1.0 + confidence) / 2])
    return Interval(float(estimate), float(low), float(high))


def difference_interval(a: np.ndarray, b: np.ndarray, estimate: float, confidence: float) -> Interval:
    """The interval of ``a - b`` from two statistics resampled with the SAME indices (paired)."""
    if a.shape != b.shape:
        raise ValueError(f"paired resamples must match: {a.shape} vs {b.shape}")
    return percentile_interval(estimate, a - b, confidence)
