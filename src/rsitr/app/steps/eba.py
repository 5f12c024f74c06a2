"""EBA diagnostics of a trained EBAKER variant: eliminated captions vs planted weak captions.

EBAKER's Eliminate-Before-Align (ACM MM 2024, Sec. 2.2) drops the training pairs whose
positive similarity is lowest, on the premise that they are weakly correlated. The embedded
synthetic benchmark plants such captions (``ground_truth.json["weak_captions"]``), so the
precision of the elimination is measurable; the training step logs it for every EBAKER
variant with EBA on (``eba_precision``, ``eba_recall`` in percent, ``eba_eliminated``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rsitr.app.core.files import write_json
from rsitr.app.core.paths import ProjectPaths
from rsitr.config import EbakerOptions, RsitrParams
from rsitr.data.manifest import read_manifest
from rsitr.losses.ebaker import elimination_precision, records_from_checkpoint


def elimination_report(params: RsitrParams, variant: str, ground_truth: str | Path) -> dict[str, Any]:
    """:func:`rsitr.losses.ebaker.elimination_precision` of the variant's ``last.pt``."""
    train = params.variant(variant).train
    paths = ProjectPaths.of(params)
    weak = json.loads(Path(ground_truth).read_text())["weak_captions"]
    return elimination_precision(records_from_checkpoint(paths.last_checkpoint(variant)),
                                 read_manifest(paths.manifest), weak,
                                 datasets=train.datasets, languages=train.languages)


def synth_ground_truth(params: RsitrParams) -> Path:
    """The synthetic benchmark's ground truth (written by the ``synth`` stage beside its datasets)."""
    return Path(params.synth.out) / "ground_truth.json"


def eba_metrics(params: RsitrParams, variant: str) -> dict[str, float]:
    """``eba_precision`` / ``eba_recall`` (percent of eliminated / planted captions) and ``eba_eliminated``
    after training an EBAKER variant with EBA on; empty without planted ground truth or elimination."""
    v = params.variant(variant)
    truth = synth_ground_truth(params)
    if not (isinstance(v.options, EbakerOptions) and v.options.eba and truth.is_file()):
        return {}
    if not ProjectPaths.of(params).last_checkpoint(variant).is_file():
        return {}
    report = elimination_report(params, variant, truth)
    write_json(ProjectPaths.of(params).eba_report(variant), {k: val for k, val in report.items() if k != "eliminated"})
    if not report["eliminated_captions"]:
        return {"eba_eliminated": 0.0}
    return {"eba_precision": 100.0 * report["precision_captions"], "eba_recall": 100.0 * report["recall_captions"],
            "eba_eliminated": float(report["eliminated_captions"])}
