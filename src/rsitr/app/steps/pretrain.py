"""The pretrain step: continual CLIP pretraining on a caption corpus into ``models/foundation/``.

``rsitr pretrain`` (and the benchmark flow when ``pretrain.enabled``) trains ``model.arch``
from ``model.pretrained`` on ``pretrain.corpus`` (``rsitr.training.pretrain``), under the
``models/foundation/.lock``, in ``models/foundation/staging/`` (``last.pt``; ``--resume``
continues it, mid-epoch, when it belongs to the same fingerprint). When it finishes it
publishes ``foundation.pt`` (an open_clip state dict: ``--set model.pretrained=<it>``),
``pretrain.json`` and ``run.json``.

Tracked in MLflow: one run named ``foundation`` with the pretrain params, the loss every
``log_every`` steps, the corpus version (md5 of the corpus CSV, or of its shards' md5s) as
an ``mlflow.data`` input, the checkpoint as an artifact, and a registered model version
``<model_prefix>-foundation`` (the rsitr embedding pyfunc, alias ``challenger``).
"""

from __future__ import annotations

import logging

import dataclasses
import json
import os
import tempfile
import types
from pathlib import Path
from typing import Any

from rsitr.app.core.files import write_json
from rsitr.app.core.fingerprint import code_version, digest, md5_file
from rsitr.app.core.locks import note_run, variant_lock
from rsitr.app.core.paths import FOUNDATION_DIR, ProjectPaths
from rsitr.app.core.runs import RunRecord, mark_active, read_active_run
from rsitr.app.steps.training import terminate_as_exception
from rsitr.config import RsitrParams, VariantParams, flatten, to_dict
from rsitr.data.corpus import CsvCorpus, WebDatasetCorpus, detect_format, open_corpus
from rsitr.errors import Terminated
from rsitr.methods.zeroshot import SPEC as ZEROSHOT
from rsitr.models import build_model
from rsitr.models.factory import build_clip
from rsitr.tracking.mlflow_tracking import Tracker, ensure_reachable, tracking_uri
from rsitr.tracking.registry import Registration, register_model
from rsitr.training.pretrain import PretrainHooks, PretrainResult, pretrain

logger = logging.getLogger(__name__)

FOUNDATION = FOUNDATION_DIR
CORPUS_DATASET = "rsitr-pretrain-corpus"
PRETRAIN_ROOTS = ("rsitr.training.pretrain",)


def open_pretrain_corpus(params: RsitrParams) -> CsvCorpus | WebDatasetCorpus:
    """``pretrain.corpus`` as a stream (a CSV with the ``csv_*`` columns, or WebDataset shards)."""
    p = params.pretrain
    kind = detect_format(p.corpus) if p.format == "auto" else p.format
    if kind == "csv":
        return open_corpus(p.corpus, "csv", img_key=p.csv_img_key, caption_key=p.csv_caption_key,
                           separator=p.csv_separator)
    return open_corpus(p.corpus, kind)


def corpus_version(corpus: CsvCorpus | WebDatasetCorpus) -> str:
    """The data version of a corpus: md5 of the CSV (as DVC records it), or md5 over its shards' md5s."""
    if isinstance(corpus, CsvCorpus):
        return md5_file(corpus.path)
    return digest([md5_file(shard) for shard in corpus.shards])[:32]


def pretrain_fingerprint(params: RsitrParams, version: str) -> str:
    """What the foundation depends on: pretrain values, the base model, the corpus version and the code."""
    values = {k: v for k, v in to_dict(params.pretrain).items() if k != "enabled"}
    return digest({"pretrain": values, "model": to_dict(params.model), "seed": params.seed, "corpus": version,
                   "code": code_version(PRETRAIN_ROOTS)})


def _start_tracker(params: RsitrParams, corpus: CsvCorpus | WebDatasetCorpus, version: str,
                   run_id: str | None) -> Tracker:
    tags = {"variant": FOUNDATION, "method": "pretrain", "arch": params.model.arch,
            "pretrained": params.model.pretrained or "none", "corpus": params.pretrain.corpus}
    tracker = Tracker.start(params, run_name=FOUNDATION, tags=tags, run_id=run_id)
    if run_id is None:
        source = corpus.path if isinstance(corpus, CsvCorpus) else corpus.shards[0].parent
        tracker.log_data_version(CORPUS_DATASET, version, str(Path(source).resolve()), context="pretraining")
        tracker.log_params(flatten({"pretrain": to_dict(params.pretrain), "model": to_dict(params.model),
                                    "seed": params.seed}))
    return tracker


def run_pretrain(params: RsitrParams, *, resume: bool = False, track: bool = True, progress: bool = True,
                 register: bool = True, on_step: Any = None) -> dict[str, Any]:
    """Pretrain, publish ``models/foundation/foundation.pt`` and return the summary (``pretrain.json``)."""
    if track:  # an unusable tracking store fails in seconds, before anything is created
        ensure_reachable(tracking_uri(params), params.tracking.connect_timeout_s)
    with variant_lock(params, FOUNDATION, "pretrain") as holder:
        corpus = open_pretrain_corpus(params)
        version = corpus_version(corpus)
        key = pretrain_fingerprint(params, version)
        interrupted = read_active_run(params, FOUNDATION, key) if resume else None
        tracker = _start_tracker(params, corpus, version, interrupted) if track else None
        if tracker is not None:
            note_run(holder, tracker.run_id)
            mark_active(params, FOUNDATION, tracker.run_id, key)
        result = _pretrain(params, corpus, tracker, resume=resume, key=key, progress=progress, on_step=on_step)
        summary = _publish(params, result, tracker, key, version)
        if tracker is not None and register:
            registration = register_foundation(params, tracker.run_id, corpus)
            summary["registered"] = {"name": registration.name, "version": registration.version}
        return summary


def _pretrain(params: RsitrParams, corpus: Any, tracker: Tracker | None, *, resume: bool, key: str, progress: bool,
              on_step: Any) -> PretrainResult:
    paths = ProjectPaths.of(params)
    try:
        with terminate_as_exception():
            bundle = build_clip(params.model, seed=params.seed)
            return pretrain(bundle, corpus, params.pretrain, paths.foundation_staging, resume=resume, run_key=key,
                            hooks=PretrainHooks(tracker, on_step, progress))
    except BaseException as exc:
        if tracker is not None:
            tracker.end("KILLED" if isinstance(exc, (KeyboardInterrupt, Terminated)) else "FAILED")
        raise


def _publish(params: RsitrParams, result: PretrainResult, tracker: Tracker | None, key: str,
             version: str) -> dict[str, Any]:
    """``foundation.pt``, then ``pretrain.json`` and ``run.json``; the MLflow run gets its results and ends."""
    paths = ProjectPaths.of(params)
    os.replace(result.checkpoint, paths.foundation_checkpoint)
    summary = {k: v for k, v in dataclasses.asdict(result).items() if k != "losses"}
    summary.update(checkpoint=str(paths.foundation_checkpoint), corpus=params.pretrain.corpus,
                   corpus_version=version, run_id=tracker.run_id if tracker else None)
    write_json(paths.foundation_summary, summary)
    if tracker is not None:
        tracker.log_metrics({"samples_per_s": result.samples_per_s, "final_loss": result.final_loss,
                             "final_logit_scale": result.logit_scale, "pretrain_seconds": result.seconds})
        tracker.log_artifact(paths.foundation_checkpoint, "foundation")
        tracker.log_artifact(paths.foundation_summary, "foundation")
        tracker.set_tags({"checkpoint": str(paths.foundation_checkpoint.resolve())})
    RunRecord(FOUNDATION, tracker.run_id if tracker else None, tracker.uri if tracker else None, key,
              version).save(paths.foundation_record)
    paths.active_record(FOUNDATION).unlink(missing_ok=True)
    if tracker is not None:
        tracker.end("FINISHED")
    return summary


def foundation_params(params: RsitrParams) -> RsitrParams:
    """``params`` with one zero-shot variant, ``foundation``, on the published foundation weights."""
    paths = ProjectPaths.of(params)
    variant = VariantParams(name=FOUNDATION, method=ZEROSHOT.name, train=params.train, options=ZEROSHOT.options(),
                            eval=params.eval)
    return dataclasses.replace(
        params, model=dataclasses.replace(params.model, pretrained=str(paths.foundation_checkpoint)),
        variants=types.MappingProxyType({FOUNDATION: variant}),
    )


def register_foundation(params: RsitrParams, run_id: str, corpus: CsvCorpus | WebDatasetCorpus) -> Registration:
    """Register the finished run's foundation as ``<model_prefix>-foundation`` (embedding pyfunc, ``challenger``)."""
    fparams = foundation_params(params)
    model = build_model(fparams, FOUNDATION)  # loads foundation.pt through model.pretrained, as variants will
    sample = next(iter(corpus))
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "example.jpg"
        image.write_bytes(sample.image)
        return register_model(fparams, FOUNDATION, run_id, model=model, example_text=sample.caption,
                              example_image=str(image))


# --------------------------------------------------------------------------- the benchmark flow's pretrain step
def current_foundation(params: RsitrParams) -> dict[str, Any] | None:
    """The published foundation's summary when it was pretrained with today's fingerprint (else None)."""
    paths = ProjectPaths.of(params)
    if not (paths.foundation_checkpoint.is_file() and paths.foundation_record.is_file()
            and paths.foundation_summary.is_file()):
        return None
    record = json.loads(paths.foundation_record.read_text(encoding="utf-8"))
    key = pretrain_fingerprint(params, corpus_version(open_pretrain_corpus(params)))
    return json.loads(paths.foundation_summary.read_text(encoding="utf-8")) if record.get("fingerprint") == key else None


def pretrain_step(params: RsitrParams, *, track: bool = True, progress: bool = False) -> dict[str, Any]:
    """Pretrain unless the published foundation is current (an interrupted run resumes); its summary."""
    current = current_foundation(params)
    if current is not None:
        logger.info(f"pretrain: {current['checkpoint']} is up to date, skipped")
        return {**current, "skipped": True}
    return {**run_pretrain(params, resume=True, track=track, register=track, progress=progress), "skipped": False}


def with_foundation(overrides: list[str], checkpoint: str) -> list[str]:
    """``overrides`` with ``model.pretrained`` set to the foundation, so every variant starts from it."""
    return [*overrides, f"model.pretrained={checkpoint}"]
