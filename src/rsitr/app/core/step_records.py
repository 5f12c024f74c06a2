"""Steps of the model work that skip themselves when their outputs are current.

A step (keywords, train, evaluate, c2f, register) of a variant has a fingerprint (its
resolved config, the data version and the code version: ``rsitr.app.core.fingerprint``). When it
finishes it writes ``models/<variant>/<step>.done.json`` with that fingerprint and its
result. ``completed`` returns the recorded result only when the fingerprint matches AND the
step's output files exist, so a fresh clone (no outputs) never skips work, and a config
change redoes exactly the steps it affects. The Prefect cache policy
(``rsitr.app.core.caching``) keys on the same fingerprint.
"""

from __future__ import annotations

import logging

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rsitr.app.core.files import write_json
from rsitr.app.core.fingerprint import c2f_fingerprint, digest, evaluate_fingerprint, train_fingerprint, data_version
from rsitr.app.core.paths import KEYWORDS_DIR, ProjectPaths
from rsitr.config import RsitrParams, to_dict
from rsitr.tracking.mlflow_tracking import tracking_uri

logger = logging.getLogger(__name__)


def keywords_fingerprint(params: RsitrParams, variant: str | None = None) -> str:
    return digest({"keywords": to_dict(params.keywords), "data": data_version(params)})


def register_fingerprint(params: RsitrParams, variant: str) -> str:
    return digest({"evaluate": evaluate_fingerprint(params, variant), "tracking": tracking_uri(params),
                   "prefix": params.tracking.model_prefix})


FINGERPRINTS: dict[str, Callable[[RsitrParams, str], str]] = {
    "keywords": keywords_fingerprint,
    "train": train_fingerprint,
    "evaluate": evaluate_fingerprint,
    "c2f": c2f_fingerprint,
    "register": register_fingerprint,
}


def _owner(step: str, variant: str | None) -> str:
    return KEYWORDS_DIR if step == "keywords" else str(variant)


def done_record(params: RsitrParams, step: str, variant: str | None) -> Path:
    return ProjectPaths.of(params).variant_dir(_owner(step, variant)) / f"{step}.done.json"


def step_outputs(params: RsitrParams, step: str, variant: str | None) -> list[Path]:
    """Files that must exist for a recorded step to count as done."""
    paths = ProjectPaths.of(params)
    if step == "keywords":
        return [paths.keywords]
    if step in ("train", "register"):
        return [paths.best_checkpoint(str(variant)), paths.run_record(str(variant))]
    if step == "evaluate":
        return [paths.metrics / str(variant)]
    if step == "c2f":
        return [paths.hash_heads(str(variant)).with_suffix(".json"), paths.metrics / "c2f" / str(variant)]
    raise KeyError(step)


def fingerprint(params: RsitrParams, step: str, variant: str | None) -> str:
    return FINGERPRINTS[step](params, str(variant))


def completed(params: RsitrParams, step: str, variant: str | None, key: str | None = None) -> dict[str, Any] | None:
    """The recorded result of ``step`` when it is current (same fingerprint, outputs present)."""
    record = done_record(params, step, variant)
    if not record.is_file() or not all(path.exists() for path in step_outputs(params, step, variant)):
        return None
    raw = json.loads(record.read_text(encoding="utf-8"))
    return raw.get("result") if raw.get("fingerprint") == (key or fingerprint(params, step, variant)) else None


def run_step(params: RsitrParams, step: str, variant: str | None, work: Callable[[], Any]) -> dict[str, Any]:
    """Run ``work`` unless ``step`` is current; record its result with the fingerprint."""
    key = fingerprint(params, step, variant)
    previous = completed(params, step, variant, key)
    if previous is not None:
        logger.info(f"{step}{f' {variant}' if variant else ''}: up to date, skipped")
        return {**previous, "skipped": True}
    record = done_record(params, step, variant)
    record.unlink(missing_ok=True)  # a failed re-run must not leave the old record describing new files
    result = json.loads(json.dumps(work(), default=str))
    write_json(record, {"fingerprint": key, "result": result})
    return {**result, "skipped": False}
