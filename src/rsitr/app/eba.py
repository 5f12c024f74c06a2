"""EBA diagnostics of a trained EBAKER variant: eliminated captions vs planted weak captions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rsitr.app.paths import ProjectPaths
from rsitr.config import RsitrParams
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
