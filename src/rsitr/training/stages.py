"""The train and evaluate steps of a variant, as DVC stages and Prefect tasks both call them.

One MLflow run per variant: ``run_train`` creates it (failing in seconds if the tracking
server is unreachable, before any training), logs params, per-epoch metrics, every loss
term, tags and artifacts, and records the run id beside the checkpoint
(``models/<variant>/run.json``); ``run_evaluate`` reopens that run and adds the final
metrics per test set and language.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from rsitr.config import RsitrParams, to_dict
from rsitr.errors import DataError
from rsitr.training.checkpoint import load_trained_model
from rsitr.training.trainer import (
    CHECKPOINT_BEST,
    manifest_path,
    model_dir,
    resolve_device,
    train_variant,
    write_train_summary,
)

RUN_FILE = "run.json"


def metrics_dir(params: RsitrParams, variant: str) -> Path:
    return Path(params.paths.metrics) / variant


def metrics_file(params: RsitrParams, variant: str, test_set: str, language: str) -> Path:
    """``metrics/<variant>/<test_set>.json`` (English) or ``<test_set>.<lang>.json``."""
    suffix = "" if language == "en" else f".{language}"
    return metrics_dir(params, variant) / f"{test_set}{suffix}.json"


def _tags(params: RsitrParams, variant: str) -> dict[str, str]:
    v = params.variant(variant)
    return {
        "variant": variant,
        "method": v.method,
        "arch": params.model.arch,
        "pretrained": params.model.pretrained or "none",
        "datasets": ",".join(v.train.datasets or [d.name for d in params.datasets]),
        "languages": ",".join(v.train.languages),
    }


def _log_config_artifact(tracker: Any, params: RsitrParams) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.resolved.yaml"
        path.write_text(yaml.safe_dump(to_dict(params), sort_keys=False, allow_unicode=True))
        tracker.log_artifact(path, "config")


def run_train(params: RsitrParams, variant: str, *, resume: bool = False, track: bool = True,
              progress: bool = True) -> dict[str, Any]:
    """Train ``variant``; returns the summary written to ``models/<variant>/train.json``."""
    from rsitr.tracking.mlflow_tracking import Tracker

    params.variant(variant)  # unknown names fail before anything starts
    main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 alone tracks and writes
    track = track and main_rank
    out = model_dir(params, variant)
    run_file = out / RUN_FILE
    previous_run = json.loads(run_file.read_text())["run_id"] if (resume and run_file.is_file()) else None
    tracker = Tracker.start(params, run_name=variant, tags=_tags(params, variant), run_id=previous_run) if track else None
    try:
        if tracker is not None:
            tracker.log_config(params, variant)
            _log_config_artifact(tracker, params)
        result = train_variant(params, variant, resume=resume, tracker=tracker, progress=progress)
    except BaseException:
        if tracker is not None:
            tracker.end("FAILED")
        raise
    if not main_rank:
        return {}
    summary_path = out / "train.json"
    write_train_summary(result, summary_path)
    if tracker is not None:
        tracker.log_metrics({
            "train_seconds": result.train_seconds,
            "epoch_seconds": result.epoch_seconds,
            "peak_memory_mb": result.peak_memory_mb,
            "checkpoint_mb": result.checkpoint_bytes / 2**20,
            **({"best_val_mR": result.best_val_mR} if result.best_val_mR is not None else {}),
        })
        tracker.set_tags({"checkpoint": str(Path(result.checkpoint).resolve())})
        tracker.log_artifact(summary_path, "train")
        run_file.write_text(json.dumps({"run_id": tracker.run_id, "tracking_uri": tracker.uri}, indent=2) + "\n")
        tracker.end("FINISHED")
    return json.loads(summary_path.read_text())


def evaluation_targets(params: RsitrParams, variant: str) -> list[tuple[str, str]]:
    """(test_set, language) pairs: the variant's eval.test_sets, or every dataset with a test split."""
    import pandas as pd

    v = params.variant(variant)
    manifest = pd.read_parquet(manifest_path(params), columns=["dataset", "split", "language"])
    tests = manifest[manifest["split"] == "test"]
    names = list(v.eval.test_sets) or [d.name for d in params.datasets if d.evaluate]
    targets = []
    for name in names:
        languages = set(tests.loc[tests["dataset"] == name, "language"])
        targets += [(name, language) for language in v.eval.languages if language in languages]
    if not targets:
        raise DataError(
            f"variant {variant}: no test captions for test sets {names} in languages {list(v.eval.languages)}; "
            "check eval.test_sets and eval.languages"
        )
    return targets


def run_evaluate(params: RsitrParams, variant: str, *, track: bool = True) -> dict[str, Any]:
    """Evaluate the best checkpoint on every test set and language; writes ``metrics/<variant>/``."""
    from rsitr.tracking.mlflow_tracking import Tracker
    from rsitr.retrieval.evaluate import evaluate_split
    from rsitr.training.data import ImageLoader, read_manifest, select_split

    v = params.variant(variant)
    out = model_dir(params, variant)
    run_file = out / RUN_FILE
    run_id = json.loads(run_file.read_text())["run_id"] if run_file.is_file() else None
    tracker = Tracker.start(params, run_name=variant, tags=_tags(params, variant), run_id=run_id) if track else None
    checkpoint = out / CHECKPOINT_BEST
    model = load_trained_model(params, v, checkpoint)
    device = resolve_device(v.train.device)
    model.to(device)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) if v.trains else 0
    loader = ImageLoader(model.image_size, model.mean, model.std, cache=False)
    manifest = read_manifest(manifest_path(params))
    folder = metrics_dir(params, variant)
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    try:
        for test_set, language in evaluation_targets(params, variant):
            split = select_split(manifest, "test", datasets=[test_set], languages=[language],
                                 normalize_arabic=params.text.normalize_arabic)
            evaluation = evaluate_split(model, split, loader, v.eval.batch_size, device)
            payload = {
                "variant": variant,
                "method": v.method,
                "test_set": test_set,
                "language": language,
                **evaluation["metrics"],
                "images": evaluation["images"],
                "captions": evaluation["captions"],
                "timings": evaluation["timings"],
                "total_params": total,
                "trainable_params": trainable,
                "checkpoint": str(checkpoint),
                "device": str(device),
            }
            path = metrics_file(params, variant, test_set, language)
            path.write_text(json.dumps(payload, indent=2) + "\n")
            results[path.stem] = payload
            print(f"{variant} on {test_set} [{language}]: mR {payload['mR']:.2f} "
                  f"(i2t R@1 {payload['i2t_R1']:.2f}, t2i R@1 {payload['t2i_R1']:.2f})")
            if tracker is not None:
                prefix = f"test.{test_set}.{language}"
                tracker.log_metrics({f"{prefix}.{k}": payload[k] for k in evaluation["metrics"]})
                tracker.log_metrics({f"{prefix}.{k}": t for k, t in evaluation["timings"].items()})
                tracker.log_artifact(path, "metrics")
    except BaseException:
        if tracker is not None:
            tracker.end("FAILED")
        raise
    if tracker is not None:
        tracker.set_tags({"evaluated": "true", "test_sets": ",".join(sorted({r["test_set"] for r in results.values()}))})
        tracker.end("FINISHED")
    return results
