"""Bootstrap samples of the leaderboard's measured rows, paired within each test set.

The leaderboard gives every measured row the per-query ranks its evaluation stored
(``rsitr.retrieval.ranks``; the run's ``ranks/`` artifact). Here the rows of one
comparability group and test set share ONE resample matrix of the test images
(``rsitr.retrieval.bootstrap.resample_indices`` with ``report.bootstrap_seed``), whatever
their language or c2f mode, and one matrix of the twin pairs, so any two of them can be
differenced pairwise. A row without ranks, or whose images differ from the others', keeps
no samples (its CI is blank; the reason is logged).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rsitr.config import ReportParams
from rsitr.retrieval.bootstrap import (
    Interval,
    bootstrap_mr,
    bootstrap_twin_acc,
    difference_interval,
    percentile_interval,
    resample_indices,
    resample_weights,
)
from rsitr.retrieval.ranks import QueryRanks

log = logging.getLogger(__name__)

SECTION = ("arch", "pretrained", "data_version", "test_set")  # rows resampled together


@dataclass(frozen=True)
class RowSamples:
    """One row's point estimates and bootstrap samples (``[samples]`` each)."""

    mR: float
    mR_samples: np.ndarray
    twin_acc: float | None = None
    twin_samples: np.ndarray | None = None
    twin_key: bytes = b""  # the twin pairs resampled (rows are paired only on the same pairs)

    def mr_interval(self, confidence: float) -> Interval:
        return percentile_interval(self.mR, self.mR_samples, confidence)


def section_samples(ranks: Mapping[Hashable, QueryRanks], settings: ReportParams) -> dict[Hashable, RowSamples]:
    """Samples of every row of ONE section (the same test images): shared image and pair resamples."""
    items = list(ranks.items())
    if not items:
        return {}
    signatures = Counter((row.n_images, row.images) for _, row in items)
    n_images, images = signatures.most_common(1)[0][0]  # the image set most rows ranked (the first on a tie)
    reference = next(row for _, row in items if (row.n_images, row.images) == (n_images, images))
    weights = resample_weights(resample_indices(reference.n_images, settings.bootstrap_samples,
                                                settings.bootstrap_seed), reference.n_images)  # [B, N]
    pair_weights: dict[bytes, np.ndarray] = {}
    out: dict[Hashable, RowSamples] = {}
    for key, row in items:
        if not row.same_images(reference):
            log.warning("row %s ranked other images than the rest of its test set: no CI", key)
            continue
        twin_value, twin_samples, signature = None, None, b""
        if row.twins is not None:
            signature = row.twins.pairs.tobytes()
            if signature not in pair_weights:
                count = row.twins.pairs.shape[0]
                pair_weights[signature] = resample_weights(
                    resample_indices(count, settings.bootstrap_samples, settings.bootstrap_seed), count)  # [B, P]
            twin_value = row.twins.accuracy()["twin_acc"]
            twin_samples = bootstrap_twin_acc(row.twins, pair_weights[signature])
        out[key] = RowSamples(row.metrics()["mR"], bootstrap_mr(row, weights), twin_value, twin_samples, signature)
    return out


def row_samples(measured: pd.DataFrame, ranks: Mapping[Hashable, QueryRanks], settings: ReportParams
                ) -> dict[Hashable, RowSamples]:
    """Samples of every measured row (keyed by the DataFrame index) that has ranks, section by section."""
    out: dict[Hashable, RowSamples] = {}
    for _, rows in measured.groupby(list(SECTION), sort=True, dropna=False):
        out.update(section_samples({i: ranks[i] for i in rows.index if i in ranks}, settings))
    return out


def paired_difference(a: RowSamples, b: RowSamples, measure: str, confidence: float) -> Interval | None:
    """``a - b`` of ``measure`` (``mR`` or ``twin_acc``) with its paired interval; None without samples."""
    if measure == "mR":
        return difference_interval(a.mR_samples, b.mR_samples, a.mR - b.mR, confidence)
    if a.twin_samples is None or b.twin_samples is None or a.twin_acc is None or b.twin_acc is None \
            or a.twin_key != b.twin_key:
        return None
    return difference_interval(a.twin_samples, b.twin_samples, a.twin_acc - b.twin_acc, confidence)
