"""The coarse-to-fine step (CFITR, Zhou, Wu, Deng, GRSL 2024) of a trained variant.

``run_c2f_train`` fits the variant's hash heads on its train split and saves them beside
the checkpoint (``models/<variant>/hash_heads.pt``, with the checkpoint's sha256);
``run_c2f_evaluate`` evaluates "<variant> + c2f" on every test target, writing
``metrics/c2f/<variant>/*.json`` and ``test.<set>.<lang>.c2f.*`` metrics on the variant's
MLflow run, so the leaderboard shows the row, and the per-query ranks of the c2f ranking as
``models/<variant>/ranks/c2f/<test_set>.<lang>.npz`` (run artifact ``ranks/c2f/``, for the
leaderboard's bootstrap). The method is in
``rsitr.retrieval.coarse_to_fine``.
"""

from __future__ import annotations

import logging

import time
from pathlib import Path
from typing import Any

from rsitr.app.steps.evaluation import RECALLS, evaluation_targets, variant_tracker
from rsitr.app.core.files import write_json
from rsitr.app.core.paths import ProjectPaths
from rsitr.app.core.runs import published_checkpoint
from rsitr.config import RsitrParams, to_dict
from rsitr.data.images import ImageLoader
from rsitr.data.manifest import read_manifest, select_split
from rsitr.errors import ModelError
from rsitr.models import resolve_device
from rsitr.models.trained import load_trained_model
from rsitr.retrieval.coarse_to_fine import evaluate_coarse_to_fine, train_hash_heads
from rsitr.retrieval.hash_head import HashHeads, load_hash_heads, save_hash_heads
from rsitr.retrieval.gallery_index import sha256_file
from rsitr.retrieval.ranks import save_ranks

logger = logging.getLogger(__name__)


def load_variant_heads(params: RsitrParams, variant: str, checkpoint: str | Path | None = None
                       ) -> tuple[HashHeads, dict[str, Any]]:
    """The variant's saved heads; with ``checkpoint``, refuse heads trained for another one."""
    heads, meta = load_hash_heads(ProjectPaths.of(params).hash_heads(variant))
    if checkpoint is not None and meta.get("checkpoint_sha256") not in (None, sha256_file(checkpoint)):
        raise ModelError(
            f"hash heads of {variant} were trained on another checkpoint than {str(checkpoint)!r}; "
            f"re-run `rsitr c2f train --variant {variant}`"
        )
    return heads, meta


def _variant_setup(params: RsitrParams, variant: str):
    v = params.variant(variant)
    paths = ProjectPaths.of(params)
    checkpoint = published_checkpoint(params, variant)
    device = resolve_device(v.train.device)
    model = load_trained_model(params, v, checkpoint).to(device)
    loader = ImageLoader.for_model(model, cache=False)
    return v, checkpoint, device, model, loader, read_manifest(paths.manifest)


def run_c2f_train(params: RsitrParams, variant: str) -> dict[str, Any]:
    """Train the variant's hash heads on its train split; writes ``models/<variant>/hash_heads.{pt,json}``."""
    v, checkpoint, device, model, loader, manifest = _variant_setup(params, variant)
    split = select_split(manifest, "train", datasets=v.train.datasets, languages=v.train.languages,
                         normalize_arabic=params.text.normalize_arabic)
    start = time.perf_counter()
    heads, history = train_hash_heads(model, split, loader, params, device)
    seconds = time.perf_counter() - start
    path = ProjectPaths.of(params).hash_heads(variant)
    summary = {
        "variant": variant,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha256_file(checkpoint),
        "c2f": to_dict(params.c2f),
        "train_images": split.num_images,
        "train_captions": len(split.captions),
        "train_seconds": seconds,
        "history": history,
    }
    save_hash_heads(path, heads, **summary)
    write_json(path.with_suffix(".json"), summary)
    final = history[-1] if history else {}
    logger.info(f"{variant}: hash heads ({heads.bits} bits) trained in {seconds:.1f}s, "
          f"final loss {final.get('loss', float('nan')):.4f} -> {path}")
    return summary


def _log_to_variant_run(params: RsitrParams, variant: str, payload: dict[str, Any], timings: dict[str, Any],
                        ranks: Path) -> None:
    """Add the c2f figures to the variant's MLflow run (``test.<set>.<lang>.c2f.<metric>``), ranks as ``ranks/c2f/``."""
    tracker = variant_tracker(params, variant)
    if tracker is None:
        return
    prefix = f"test.{payload['test_set']}.{payload['language']}.c2f"
    tracker.log_metrics({f"{prefix}.{k}": payload[k] for k in RECALLS})
    tracker.log_metrics({f"{prefix}.{k}": v for k, v in timings.items() if isinstance(v, (int, float))})
    tracker.log_artifact(ranks, "ranks/c2f")
    tracker.end("FINISHED")


def run_c2f_evaluate(params: RsitrParams, variant: str, *, track: bool = True) -> dict[str, Any]:
    """Coarse-to-fine evaluation of the variant on every test target; writes ``metrics/c2f/<variant>/*.json``."""
    v, checkpoint, device, model, loader, manifest = _variant_setup(params, variant)
    heads, _ = load_variant_heads(params, variant, checkpoint)
    paths = ProjectPaths.of(params)
    results: dict[str, Any] = {}
    for test_set, language in evaluation_targets(params, variant):
        split = select_split(manifest, "test", datasets=[test_set], languages=[language],
                             normalize_arabic=params.text.normalize_arabic)
        evaluation = evaluate_coarse_to_fine(model, heads, split, loader, v.eval.batch_size, device, params.c2f)
        payload = {
            "variant": variant, "label": f"{variant} + c2f", "method": v.method,
            "mode": "coarse_only" if params.c2f.coarse_only else "c2f", "test_set": test_set, "language": language,
            **evaluation["metrics"], "coarse_metrics": evaluation["coarse_metrics"],
            "exhaustive_metrics": evaluation.get("exhaustive_metrics"),
            "images": evaluation["images"], "captions": evaluation["captions"], "c2f": to_dict(params.c2f),
        }
        path = write_json(paths.metrics_file(variant, test_set, language, c2f=True), payload)
        ranks = save_ranks(paths.ranks_file(variant, test_set, language, c2f=True), evaluation["ranks"])
        results[path.name] = {**payload, "timings": evaluation["timings"]}
        if track:
            _log_to_variant_run(params, variant, payload, evaluation["timings"], ranks)
        exhaustive = evaluation.get("exhaustive_metrics") or {}
        logger.info(f"{variant} + c2f on {test_set} [{language}]: mR {payload['mR']:.2f} "
              f"(coarse {evaluation['coarse_metrics']['mR']:.2f}, exhaustive {exhaustive.get('mR', float('nan')):.2f})")
    return results
