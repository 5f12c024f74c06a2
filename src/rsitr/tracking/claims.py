"""The claims table: each paper's claim, measured on the leaderboard's rows, with a verdict.

One row per (claim, comparability group, test set): the measured effect (method row minus
baseline row), its paired bootstrap interval (``rsitr.tracking.uncertainty``: the same
resampled test images, or twin pairs, for both rows) and the paper's own effect where the
papers report both figures (``reference_results.csv``, RSICD). Claims whose rows are absent
from the run are skipped, with the reason logged.

Verdict rule (``docs/uncertainty.md``), with ``[lo, hi]`` the CI of the measured effect:

* **superiority** ("method > baseline"; claimed effect ``e`` = the paper's effect when it is
  known and positive, else 0):
  ``reproduced`` when ``lo > 0`` (the CI lies on the claimed side of zero);
  ``not reproduced`` when ``hi < e`` (the CI excludes the claimed effect, below it: the
  direction is not established and the paper's size is ruled out; with ``e = 0``: the
  effect is significantly the other way);
  ``inconclusive`` otherwise (the CI holds both zero and the claimed effect).
* **non-inferiority** ("without performance sacrifice", "close to", "c2f >= exhaustive";
  margin ``m`` = ``report.noninferiority_margin`` mR points):
  ``reproduced`` when ``lo > -m``; ``not reproduced`` when ``hi < -m``; ``inconclusive``
  otherwise. A condition of the claim that fails (CFITR's fine-scored share above
  ``report.fine_share_limit``) makes it ``not reproduced`` whatever the interval.
* **at most** (an exact count, no sampling: PE-RSITR's trainable share):
  ``reproduced`` when the measured value is <= the claimed bound, else ``not reproduced``.

A row with no interval (ranks missing, twin pairs absent) is ``inconclusive`` with the reason.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import pandas as pd

from rsitr.config import ReportParams
from rsitr.tracking.uncertainty import RowSamples, paired_difference

log = logging.getLogger(__name__)

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
SUPERIOR, NONINFERIOR, AT_MOST = "superiority", "non-inferiority", "at most"
COLUMNS = ("claim", "source", "arch", "data_version", "test_set", "language", "method", "baseline", "measure",
           "kind", "paper_effect", "measured_effect", "ci_low", "ci_high", "verdict", "note")
_GROUP = ("arch", "pretrained", "data_version", "test_set")


@dataclass(frozen=True)
class Claim:
    """One paper claim as a comparison of two leaderboard rows."""

    claim: str
    source: str
    method: str  # leaderboard model name
    baseline: str
    measure: str = "mR"  # mR | twin_acc | trainable_share
    kind: str = SUPERIOR
    method_language: str = "en"
    baseline_language: str = "en"
    paper: tuple[str, str] | None = None  # reference_results.csv methods (method, baseline) on RSICD
    bound: float | None = None  # AT_MOST: the claimed upper bound
    note: str = ""
    across_weights: bool = False  # the baseline has other pretrained weights (random init): compare across them


CLAIMS: tuple[Claim, ...] = (
    Claim("PE-RSITR: 98.9% fewer fine-tuning parameters without performance sacrifice", "PE-RSITR TGRS 2023",
          "petl", "finetune", kind=NONINFERIOR,
          paper=("PE-RSITR (MRS-Adapter+HMMC)", "Full fine-tune CLIP")),
    Claim("PE-RSITR: trainable parameters <= 1.1% of full fine-tuning (98.9% fewer)", "PE-RSITR TGRS 2023",
          "petl", "finetune", measure="trainable_share", kind=AT_MOST, bound=1.1,
          note="percent of the fine-tuned model's trainable parameters; paper: 161,088 of 151M at ViT-B-32"),
    Claim("EBAKER beats CLIP fine-tuning", "EBAKER ACM MM 2024 Tables 1-2", "ebaker", "finetune",
          paper=("EBAKER", "EBAKER ablation baseline (CLIP fine-tune)")),
    Claim("EBAKER Table 2: EBA + KER improve global + local alignment", "EBAKER ACM MM 2024 Table 2",
          "ebaker", "ebaker_local", note="paper: about +1.4 mR per module"),
    Claim("KER: keyword reasoning tells fine-grained twins apart better than fine-tuning", "EBAKER ACM MM 2024 (KER)",
          "ebaker", "finetune", measure="twin_acc", note="twin accuracy, paired bootstrap over twin pairs"),
    Claim("CFITR: coarse-to-fine >= dual-stream while scoring <= 7% of pairs", "CFITR GRSL 2024",
          "finetune + c2f", "finetune", kind=NONINFERIOR),
    Claim("CFITR: coarse-to-fine >= dual-stream while scoring <= 7% of pairs", "CFITR GRSL 2024",
          "ebaker + c2f", "ebaker", kind=NONINFERIOR),
    Claim("CFITR: single-stream re-scoring of the hash shortlist >= its dual stream, scoring <= 7% of pairs",
          "CFITR GRSL 2024", "cfitr + c2f", "cfitr", kind=NONINFERIOR),
    Claim("CFITR: coarse-to-fine beats fine-tuned CLIP's exhaustive dual-stream ranking", "CFITR GRSL 2024",
          "cfitr + c2f", "finetune"),
    Claim("Thesis: Arabic-only retrieval close to English", "Al Rahhal et al. 2022", "finetune_ar", "finetune",
          kind=NONINFERIOR, method_language="ar"),
    Claim("Thesis: bilingual model's Arabic close to English", "Al Rahhal et al. 2022", "bilingual", "finetune",
          kind=NONINFERIOR, method_language="ar"),
    Claim("Thesis: bilingual training keeps English", "Al Rahhal et al. 2022", "bilingual", "finetune",
          kind=NONINFERIOR),
    Claim("Foundation zero-shot far above random weights", "RemoteCLIP 2023 / GeoRSCLIP 2023", "zeroshot",
          "zeroshot_random", across_weights=True),
)


def verdict(kind: str, low: float, high: float, *, claimed: float = 0.0, margin: float = 0.0,
            bound: float | None = None) -> str:
    """The module's verdict rule for one measured effect and its interval ``[low, high]``."""
    if any(x is None or not math.isfinite(x) for x in (low, high)):
        return INCONCLUSIVE
    if kind == AT_MOST:
        if bound is None:
            raise ValueError("an 'at most' claim needs its bound")
        return REPRODUCED if high <= bound else NOT_REPRODUCED
    if kind == NONINFERIOR:
        return REPRODUCED if low > -margin else NOT_REPRODUCED if high < -margin else INCONCLUSIVE
    if kind == SUPERIOR:
        target = claimed if claimed is not None and math.isfinite(claimed) and claimed > 0 else 0.0
        return REPRODUCED if low > 0 else NOT_REPRODUCED if high < target else INCONCLUSIVE
    raise ValueError(f"unknown claim kind {kind!r}; valid: {SUPERIOR}, {NONINFERIOR}, {AT_MOST}")


def paper_effect(claim: Claim, reported: pd.DataFrame) -> float:
    """The paper's effect on RSICD (method mR - baseline mR in ``reference_results.csv``), NaN when not both."""
    if claim.paper is None or reported.empty:
        return float("nan")
    rsicd = reported[reported["benchmark"] == "RSICD"].set_index("model")["mR"]
    method, baseline = claim.paper
    if method not in rsicd or baseline not in rsicd:
        return float("nan")
    return round(float(rsicd[method]) - float(rsicd[baseline]), 2)


def _find(rows: pd.DataFrame, model: str, language: str) -> Hashable | None:
    match = rows[(rows["model"] == model) & (rows["language"] == language)]
    return match.index[0] if len(match) else None


def _trainable_share(rows: pd.DataFrame, method: Hashable, baseline: Hashable) -> float:
    ours, full = rows.at[method, "trainable_params"], rows.at[baseline, "trainable_params"]
    if pd.isna(ours) or pd.isna(full) or not float(full):
        return float("nan")
    return 100.0 * float(ours) / float(full)


def _measure(claim: Claim, rows: pd.DataFrame, method: Hashable, baseline: Hashable,
             samples: Mapping[Hashable, RowSamples], settings: ReportParams) -> tuple[float, float, float, str]:
    """(effect, ci_low, ci_high, note) of one claim on one section."""
    if claim.measure == "trainable_share":
        share = _trainable_share(rows, method, baseline)
        return share, share, share, "exact parameter count (no sampling)"
    if method not in samples or baseline not in samples:
        missing = claim.method if method not in samples else claim.baseline
        effect = rows.at[method, claim.measure] - rows.at[baseline, claim.measure] \
            if claim.measure in rows.columns else float("nan")
        return float(effect), float("nan"), float("nan"), f"no stored ranks for {missing}: no interval"
    interval = paired_difference(samples[method], samples[baseline], claim.measure, settings.confidence)
    if interval is None:
        return float("nan"), float("nan"), float("nan"), f"no per-pair {claim.measure} outcomes for both rows"
    return interval.estimate, interval.low, interval.high, ""


def _condition(claim: Claim, rows: pd.DataFrame, method: Hashable, settings: ReportParams) -> str | None:
    """The failure of a claim's extra condition (CFITR's fine-scored share), or None."""
    if not claim.method.endswith(" + c2f"):
        return None
    share = rows.at[method, "fine_share"] if "fine_share" in rows.columns else None
    if share is None or pd.isna(share):
        return "fine-scored share not logged"
    if float(share) > settings.fine_share_limit:
        return f"fine-scored pairs {float(share):.1f}% > {settings.fine_share_limit:g}%"
    return None


def _claim_row(claim: Claim, rows: pd.DataFrame, samples: Mapping[Hashable, RowSamples], settings: ReportParams,
               reported: pd.DataFrame) -> dict[str, object] | None:
    method, baseline = _find(rows, claim.method, claim.method_language), _find(rows, claim.baseline,
                                                                                  claim.baseline_language)
    first = rows.iloc[0]
    where = f"{first['test_set']} ({first['arch']}, data {str(first['data_version'])[:8]})"
    if method is None or baseline is None:
        absent = f"{claim.method} [{claim.method_language}]" if method is None else \
            f"{claim.baseline} [{claim.baseline_language}]"
        log.info("claim %r skipped on %s: no %s row", claim.claim, where, absent)
        return None
    effect, low, high, note = _measure(claim, rows, method, baseline, samples, settings)
    paper = paper_effect(claim, reported)
    result = verdict(claim.kind, low, high, claimed=paper, margin=settings.noninferiority_margin, bound=claim.bound)
    failed = _condition(claim, rows, method, settings)
    if failed is not None and result == REPRODUCED:
        result = NOT_REPRODUCED if "share not logged" not in failed else INCONCLUSIVE
    notes = [n for n in (claim.note, note, failed) if n]
    if claim.kind == NONINFERIOR:
        notes.append(f"margin {settings.noninferiority_margin:g} mR")
    if claim.measure == "trainable_share":
        notes.append(f"claimed <= {claim.bound:g}%")
    language = claim.method_language if claim.method_language == claim.baseline_language else \
        f"{claim.method_language} vs {claim.baseline_language}"
    return {"claim": claim.claim, "source": claim.source, "arch": first["arch"], "data_version": first["data_version"],
            "test_set": first["test_set"], "language": language, "method": claim.method, "baseline": claim.baseline,
            "measure": claim.measure, "kind": claim.kind, "paper_effect": paper, "measured_effect": effect,
            "ci_low": low, "ci_high": high, "verdict": result, "note": "; ".join(notes)}


def claims_table(measured: pd.DataFrame, samples: Mapping[Hashable, RowSamples], settings: ReportParams,
                 reported: pd.DataFrame, claims: tuple[Claim, ...] = CLAIMS) -> pd.DataFrame:
    """Every claim on every (group, test set) of ``measured`` that has its two rows (see the module doc)."""
    out = []
    if not measured.empty:
        for across in (False, True):  # a claim across weights sees a group's rows of every pretrained weights
            group = [key for key in _GROUP if not (across and key == "pretrained")]
            for _, rows in measured.groupby(group, sort=True, dropna=False):
                for claim in (c for c in claims if c.across_weights == across):
                    row = _claim_row(claim, rows, samples, settings, reported)
                    if row is not None:
                        out.append(row)
    return pd.DataFrame(out, columns=list(COLUMNS))
