"""The train step of a variant, as the Prefect flow, ``rsitr train`` and torchrun run it.

One MLflow run per training: ``run_train`` creates it (failing in seconds if the tracking
server is unreachable, before any training), logs params, the data version (an
``mlflow.data`` input), per-epoch metrics and every loss term, tags and artifacts, and
records the run beside the checkpoint (``models/<variant>/run.json``) with the step's
fingerprint. ``--resume`` continues the same MLflow run (``active.json``) from ``last.pt``
when both belong to this fingerprint.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import tempfile
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from rsitr.app.steps.eba import eba_metrics
from rsitr.app.core.fingerprint import data_version, train_fingerprint
from rsitr.app.steps.keywords import variant_keywords
from rsitr.app.core.locks import note_run, variant_lock
from rsitr.app.core.paths import ProjectPaths
from rsitr.app.core.runs import RunRecord, mark_active, published_checkpoint, read_active_run
from rsitr.config import RsitrParams, base_weights, method_spec, to_dict
from rsitr.data.manifest import read_manifest
from rsitr.errors import Terminated
from rsitr.tracking.mlflow_tracking import Tracker, ensure_reachable, tracking_uri
from rsitr.training.trainer import TrainJob, TrainResult, train_variant, write_train_summary

DATASET_NAME = "rsitr-processed-manifest"


def variant_tags(params: RsitrParams, variant: str) -> dict[str, str]:
    v = params.variant(variant)
    return {
        "variant": variant,
        "method": v.method,
        "arch": params.model.arch,
        "pretrained": base_weights(v, params.model) or "none",
        "datasets": ",".join(v.train.datasets or [d.name for d in params.datasets]),
        "languages": ",".join(v.train.languages),
    }


def unique_run_name(name: str, fingerprint: str) -> str:
    """``<variant>-<fingerprint[:8]>-<UTC time>``: a retrain (new config, data or code) is told apart at a glance."""
    return f"{name}-{fingerprint[:8]}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"


def prefect_run_tags() -> dict[str, str]:
    """``prefect.flow_run_id`` / ``prefect.task_run_id`` of the Prefect run this code runs in (none outside one)."""
    if "prefect" not in sys.modules:  # not imported: not inside a flow (and `rsitr train` need not load Prefect)
        return {}
    from prefect.runtime import flow_run, task_run

    ids = {"prefect.flow_run_id": flow_run.get_id(), "prefect.task_run_id": task_run.get_id()}
    return {k: str(v) for k, v in ids.items() if v}


def start_tracker(params: RsitrParams, variant: str, run_id: str | None = None) -> Tracker:
    """A new (or re-opened) MLflow run of ``variant`` carrying the data version and the Prefect run ids."""
    name = variant if run_id else unique_run_name(variant, train_fingerprint(params, variant))
    tracker = Tracker.start(params, run_name=name, tags={**variant_tags(params, variant), **prefect_run_tags()},
                            run_id=run_id)
    if run_id is None:
        manifest = ProjectPaths.of(params).manifest
        tracker.log_data_version(DATASET_NAME, data_version(params), str(manifest.resolve()))
    return tracker


def _log_config(tracker: Tracker, params: RsitrParams, variant: str) -> None:
    tracker.log_config(params, variant)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.resolved.yaml"
        path.write_text(yaml.safe_dump(to_dict(params), sort_keys=False, allow_unicode=True))
        tracker.log_artifact(path, "config")


def _keywords_if_needed(params: RsitrParams, variant: str) -> list[str] | None:
    v = params.variant(variant)
    return variant_keywords(params) if method_spec(v.method).uses_keywords(v.options) else None


def with_parent_checkpoint(params: RsitrParams, variant: str) -> RsitrParams:
    """Resolve ``train.init_from_variant`` to that variant's ``best.pt`` (``train.init_from``).

    The bilingual regimes of Al Rahhal et al. train English first, then Arabic: ``finetune_ar``
    and ``bilingual`` start from ``finetune``'s best checkpoint (docs/methods.md).
    """
    v = params.variant(variant)
    parent = v.train.init_from_variant
    if not parent:
        return params
    path = published_checkpoint(params, parent)  # best.pt and run.json agree, or a ModelError naming the fix
    train = dataclasses.replace(v.train, init_from=str(path), init_from_variant="")
    variants = {**params.variants, variant: dataclasses.replace(v, train=train)}
    return dataclasses.replace(params, variants=types.MappingProxyType(variants))


def fit(params: RsitrParams, variant: str, *, resume: bool = False, tracker: Tracker | None = None,
        progress: bool = True, run_key: str | None = None, resume_lr: float | None = None) -> TrainResult:
    """Train ``variant`` on this project's data into ``models/<variant>/staging/`` (nothing is published,
    no MLflow run unless ``tracker``); ``run_key`` defaults to the step fingerprint."""
    paths = ProjectPaths.of(params)
    run_key = run_key if run_key is not None else train_fingerprint(params, variant)
    job = TrainJob(out_dir=paths.staging_dir(variant), manifest=read_manifest(paths.manifest),
                   keywords=_keywords_if_needed(params, variant), resume=resume, tracker=tracker, progress=progress,
                   run_key=run_key, resume_lr=resume_lr)
    return train_variant(with_parent_checkpoint(params, variant), variant, job)


def publish(params: RsitrParams, variant: str, result: TrainResult, record: RunRecord) -> None:
    """Make a finished training what evaluation and registration read: ``best.pt``, then ``run.json``.

    Each is replaced atomically; readers check that the two name the same run
    (``rsitr.app.core.runs.published_checkpoint``), so an interruption between them is detected.
    """
    paths = ProjectPaths.of(params)
    staging = paths.staging_dir(variant)
    os.replace(result.checkpoint, paths.best_checkpoint(variant))
    for name in ("eliminated.json",):
        if (staging / name).is_file():
            os.replace(staging / name, paths.variant_dir(variant) / name)
    record.save(paths.run_record(variant))


@contextmanager
def terminate_as_exception() -> Iterator[None]:
    """Turn SIGTERM into ``Terminated`` while training (main thread only: Prefect tasks run in threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_train(params: RsitrParams, variant: str, *, resume: bool = False, track: bool = True,
              progress: bool = True, resume_lr: float | None = None) -> dict[str, Any]:
    """Train ``variant`` and publish it; returns the summary written to ``models/<variant>/train.json``."""
    params.variant(variant)  # unknown names fail before anything starts
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 alone locks, tracks and writes
        fit(params, variant, resume=resume, progress=False, resume_lr=resume_lr)
        return {}
    if track:  # an unusable tracking store fails in seconds, before anything is created
        ensure_reachable(tracking_uri(params), params.tracking.connect_timeout_s)
    with variant_lock(params, variant, "train") as holder:
        return _train_and_publish(params, variant, resume, track, progress, resume_lr, holder)


def _train_and_publish(params: RsitrParams, variant: str, resume: bool, track: bool, progress: bool,
                       resume_lr: float | None, holder: Path) -> dict[str, Any]:
    paths = ProjectPaths.of(params)
    fingerprint = train_fingerprint(params, variant)
    interrupted = read_active_run(params, variant, fingerprint) if resume else None
    tracker = start_tracker(params, variant, interrupted) if track else None
    try:
        with terminate_as_exception():
            if tracker is not None:
                note_run(holder, tracker.run_id)
                mark_active(params, variant, tracker.run_id, fingerprint)
                if interrupted is None:
                    _log_config(tracker, params, variant)
                tracker.set_tags({"resumed_with_lr": resume_lr} if resume_lr is not None else {})
            result = fit(params, variant, resume=resume, tracker=tracker, progress=progress, run_key=fingerprint,
                         resume_lr=resume_lr)
    except BaseException as exc:
        if tracker is not None:
            tracker.end("KILLED" if isinstance(exc, (KeyboardInterrupt, Terminated)) else "FAILED")
        raise
    summary = write_train_summary(result, paths.train_summary(variant))
    if tracker is not None:
        _log_result(tracker, result, paths.train_summary(variant), paths.best_checkpoint(variant))
    eba = eba_metrics(params, variant)  # EBAKER: eliminated vs planted weak captions (synthetic ground truth)
    if tracker is not None and eba:
        tracker.log_metrics(eba)
    publish(params, variant, result, RunRecord(variant, tracker.run_id if tracker else None,
                                               tracker.uri if tracker else None, fingerprint, data_version(params)))
    paths.active_record(variant).unlink(missing_ok=True)
    if tracker is not None:
        tracker.end("FINISHED")
    return summary


def _log_result(tracker: Tracker, result: TrainResult, summary_path: Path, published: Path) -> None:
    tracker.log_metrics({
        "train_seconds": result.train_seconds, "optimizer_steps": result.optimizer_steps,
        "epoch_seconds": result.epoch_seconds,
        "peak_memory_mb": result.peak_memory_mb,
        "checkpoint_mb": result.checkpoint_bytes / 2**20,
        **({"best_val_mR": result.best_val_mR} if result.best_val_mR is not None else {}),
    })
    tracker.set_tags({"checkpoint": str(published.resolve())})
    tracker.log_artifact(summary_path, "train")
