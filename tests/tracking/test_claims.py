"""The claims table: the verdict rule, one branch at a time, and claims built from leaderboard rows."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from rsitr.config import ReportParams
from rsitr.tracking.claims import (
    AT_MOST,
    CLAIMS,
    COLUMNS,
    INCONCLUSIVE,
    NONINFERIOR,
    NOT_REPRODUCED,
    REPRODUCED,
    SUPERIOR,
    claims_table,
    paper_effect,
    verdict,
)
from rsitr.tracking.leaderboard import COLUMNS as BOARD_COLUMNS, reference_rows
from rsitr.tracking.uncertainty import RowSamples


@pytest.mark.parametrize(("low", "high", "claimed", "expected"), [
    (0.5, 4.0, 2.78, REPRODUCED),  # above zero: the claimed direction, whatever the size
    (0.1, 0.9, 2.78, REPRODUCED),
    (-1.0, 2.0, 2.78, NOT_REPRODUCED),  # holds zero, excludes the paper's effect from below
    (-1.0, 3.0, 2.78, INCONCLUSIVE),  # holds zero and the paper's effect
    (-3.0, -0.5, float("nan"), NOT_REPRODUCED),  # paper effect unknown: significantly the other way
    (-3.0, 0.5, float("nan"), INCONCLUSIVE),
    (float("nan"), float("nan"), 1.0, INCONCLUSIVE),  # no interval
])
def test_superiority_verdicts(low: float, high: float, claimed: float, expected: str) -> None:
    assert verdict(SUPERIOR, low, high, claimed=claimed) == expected


@pytest.mark.parametrize(("low", "high", "expected"), [
    (-1.5, 3.0, REPRODUCED),  # above -margin
    (-6.0, -2.5, NOT_REPRODUCED),  # below -margin
    (-3.0, 1.0, INCONCLUSIVE),  # straddles -margin
])
def test_noninferiority_verdicts(low: float, high: float, expected: str) -> None:
    assert verdict(NONINFERIOR, low, high, margin=2.0) == expected


def test_at_most_verdicts_and_unknown_kinds() -> None:
    assert verdict(AT_MOST, 0.7, 0.7, bound=1.1) == REPRODUCED
    assert verdict(AT_MOST, 2.0, 2.0, bound=1.1) == NOT_REPRODUCED
    with pytest.raises(ValueError, match="unknown claim kind"):
        verdict("bigger", 0.0, 1.0)


def test_paper_effects_come_from_the_reference_results() -> None:
    reported = reference_rows()
    by_method = {(c.method, c.baseline, c.measure): c for c in CLAIMS}
    assert paper_effect(by_method[("ebaker", "finetune", "mR")], reported) == pytest.approx(40.70 - 37.92)
    assert paper_effect(by_method[("petl", "finetune", "mR")], reported) == pytest.approx(31.12 - 30.39)
    assert np.isnan(paper_effect(by_method[("zeroshot", "zeroshot_random", "mR")], reported))


def _row(model: str, mR: float, language: str = "en", **extra) -> dict:
    return {**dict.fromkeys(BOARD_COLUMNS), "label": "measured", "arch": "tiny", "pretrained": "none",
            "data_version": "abc", "test_set": "synth", "language": language, "model": model, "mR": mR, **extra}


def test_claims_table_from_rows_and_samples(caplog: pytest.LogCaptureFixture) -> None:
    foundation = {"pretrained": "models/foundation/foundation.pt"}  # the default run: every row but the random one
    measured = pd.DataFrame([
        _row("finetune", 50.0, trainable_params=1000, **foundation), _row("petl", 49.5, trainable_params=5, **foundation),
        _row("ebaker", 40.0, twin_acc=55.0, **foundation), _row("finetune + c2f", 49.0, fine_share=12.0, **foundation),
        _row("zeroshot", 30.0, **foundation), _row("zeroshot_random", 5.0),  # pretrained none: its own section
    ], columns=list(BOARD_COLUMNS))
    shift = np.linspace(-1.0, 1.0, 101)  # the same resampled noise for every row: a paired design
    samples = {i: RowSamples(float(r.mR), r.mR + shift) for i, r in measured.iterrows()}
    with caplog.at_level(logging.INFO, logger="rsitr.tracking.claims"):
        claims = claims_table(measured, samples, ReportParams(), reference_rows())
    assert list(claims.columns) == list(COLUMNS)
    row = {(r.method, r.baseline, r.measure): r for r in claims.itertuples()}
    petl = row[("petl", "finetune", "mR")]
    assert (petl.measured_effect, petl.ci_low, petl.ci_high) == pytest.approx((-0.5, -0.5, -0.5))
    assert petl.verdict == REPRODUCED and petl.paper_effect == pytest.approx(0.73)
    share = row[("petl", "finetune", "trainable_share")]
    assert share.measured_effect == pytest.approx(0.5) and share.verdict == REPRODUCED
    assert row[("ebaker", "finetune", "mR")].verdict == NOT_REPRODUCED
    kept = row[("ebaker", "finetune", "twin_acc")]  # no per-pair samples: no interval, inconclusive
    assert kept.verdict == INCONCLUSIVE and "per-pair" in kept.note
    c2f = row[("finetune + c2f", "finetune", "mR")]  # within the margin, but scored 12% of the pairs
    assert c2f.verdict == NOT_REPRODUCED and "12.0% > 7%" in c2f.note
    assert row[("zeroshot", "zeroshot_random", "mR")].verdict == REPRODUCED
    assert ("ebaker + c2f", "ebaker", "mR") not in row and ("bilingual", "finetune", "mR") not in row
    assert "skipped" in caplog.text and "no bilingual [ar] row" in caplog.text


def test_twin_claim_uses_paired_pair_resamples() -> None:
    measured = pd.DataFrame([_row("finetune", 50.0, twin_acc=50.0), _row("ebaker", 50.0, twin_acc=70.0)],
                            columns=list(BOARD_COLUMNS))
    noise = np.linspace(-5.0, 5.0, 101)
    samples = {0: RowSamples(50.0, 50.0 + noise, 50.0, 50.0 + noise, b"pairs"),
               1: RowSamples(50.0, 50.0 + noise, 70.0, 70.0 + noise, b"pairs")}
    claims = claims_table(measured, samples, ReportParams(), reference_rows())
    twin = claims[claims["measure"] == "twin_acc"].iloc[0]
    assert (twin["measured_effect"], twin["ci_low"], twin["ci_high"]) == pytest.approx((20.0, 20.0, 20.0))
    assert twin["verdict"] == REPRODUCED
    other_pairs = {0: samples[0], 1: RowSamples(50.0, 50.0 + noise, 70.0, 70.0 + noise, b"other pairs")}
    unpaired = claims_table(measured, other_pairs, ReportParams(), reference_rows())
    assert unpaired[unpaired["measure"] == "twin_acc"].iloc[0]["verdict"] == INCONCLUSIVE
