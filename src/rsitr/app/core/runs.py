"""The run record beside a variant's checkpoint: ``models/<variant>/run.json``.

It names the MLflow run that produced ``best.pt``, the step fingerprint (config + data
version + code version, ``rsitr.app.core.fingerprint``) and the data version, so evaluation,
registration and coarse-to-fine know which run they extend, and a re-run can tell whether
the checkpoint on disk is the one its config asks for.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from rsitr.app.core.files import write_json
from rsitr.app.core.paths import ProjectPaths
from rsitr.config import RsitrParams
from rsitr.errors import ModelError, TrackingError
from rsitr.models.trained import load_checkpoint


@dataclass(frozen=True)
class RunRecord:
    variant: str
    run_id: str | None
    tracking_uri: str | None
    fingerprint: str
    data_version: str

    def save(self, path: Path) -> None:
        write_json(path, asdict(self))


def read_run_record(params: RsitrParams, variant: str) -> RunRecord | None:
    path = ProjectPaths.of(params).run_record(variant)
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return RunRecord(variant=raw.get("variant", variant), run_id=raw.get("run_id"), tracking_uri=raw.get("tracking_uri"),
                     fingerprint=raw.get("fingerprint", ""), data_version=raw.get("data_version", ""))


def variant_run_id(params: RsitrParams, variant: str) -> str:
    """The MLflow run recorded by ``rsitr train`` for ``variant``."""
    record = read_run_record(params, variant)
    if record is None or not record.run_id:
        path = ProjectPaths.of(params).run_record(variant)
        raise TrackingError(f"no MLflow run recorded for variant {variant} ({path} missing or untracked); run "
                            f"`rsitr train --variant {variant}` with tracking on, or pass --run-id")
    return record.run_id


def mark_active(params: RsitrParams, variant: str, run_id: str, fingerprint: str) -> None:
    """``active.json``: the MLflow run of a training in progress, so ``--resume`` continues it."""
    write_json(ProjectPaths.of(params).active_record(variant), {"run_id": run_id, "fingerprint": fingerprint})


def read_active_run(params: RsitrParams, variant: str, fingerprint: str) -> str | None:
    """The run id of an interrupted training with the same fingerprint, if any."""
    path = ProjectPaths.of(params).active_record(variant)
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    return raw.get("run_id") if raw.get("fingerprint") == fingerprint else None


def published_checkpoint(params: RsitrParams, variant: str) -> Path:
    """``models/<variant>/best.pt``, checked against ``run.json``: both must name the same run.

    A training publishes ``best.pt`` then ``run.json`` when it finishes; an interrupted run
    changes neither. If they disagree (interrupted between the two, or files copied by
    hand), nothing downstream may use the pair.
    """
    path = ProjectPaths.of(params).best_checkpoint(variant)
    if not path.is_file():
        raise ModelError(f"checkpoint {path} not found; train the variant first (`rsitr train --variant {variant}`)")
    record = read_run_record(params, variant)
    payload = load_checkpoint(path)
    if record is None or payload.get("run_key", "") != record.fingerprint or \
            (record.run_id and payload.get("run_id") not in (None, record.run_id)):
        raise ModelError(f"{path} and {ProjectPaths.of(params).run_record(variant)} describe different runs "
                         f"(an interrupted publish, or files copied by hand); train again: "
                         f"rsitr train --variant {variant}")
    return path
