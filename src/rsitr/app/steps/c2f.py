"""The coarse-to-fine step (CFITR, Zhou, Wu, Deng, GRSL 2024) of a trained variant.

``run_c2f_train`` fits the variant's hash heads on its train split and saves them beside
the checkpoint (``models/<variant>/hash_heads.pt``, with the checkpoint's sha256), unless
nothing needs fitting: a model whose embeddings carry its own jointly trained ``"hash"``
codes (cfitr), or ``c2f.codes`` ``simhash`` / ``sign``; ``hash_heads.json`` records which;
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

import torch

from rsitr.app.steps.evaluation import RECALLS, evaluation_targets, variant_tracker
from rsitr.app.core.files import write_json
from rsitr.app.core.paths import ProjectPaths
from rsitr.app.core.runs import published_checkpoint
from rsitr.config import RsitrParams, to_dict
from rsitr.data.images import ImageLoader
from rsitr.data.manifest import read_manifest, select_split
from rsitr.errors import ConfigError, ModelError
from rsitr.models import resolve_device
from rsitr.models.trained import load_trained_model
from rsitr.retrieval.coarse_to_fine import evaluate_coarse_to_fine, train_hash_heads
from rsitr.retrieval.codes import HeadCoder, ModelHashCoder, SignCoder, SimHashCoder, embeddings_have_hash
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


def model_has_hash(model: Any, device: Any) -> bool:
    """Whether the model's embeddings carry its own hash codes (``"hash"``: heads trained with it)."""
    with torch.no_grad():
        return embeddings_have_hash(model.embed_texts(model.tokenize(["a"]).to(device)))


def code_kind(params: RsitrParams, own_hash: bool) -> str:
    """``c2f.codes`` resolved: ``auto`` is the model's own codes (``learned``) when it has them, else ``simhash``.

    Heads fitted after training on frozen features lose to SimHash at equal bits (finetune on
    synth_rsicd: coarse mR 17.7 vs 54.1), so they are an option (``learned``), not the default."""
    if params.c2f.codes == "auto":
        return "learned" if own_hash else "simhash"
    return params.c2f.codes


def _no_fitting(params: RsitrParams, variant: str, checkpoint: Path, own_hash: bool) -> dict[str, Any] | None:
    """The summary of a c2f train that fits nothing (own hash codes, simhash, sign), else None."""
    kind = code_kind(params, own_hash)
    if kind == "learned" and not own_hash:
        return None
    path = ProjectPaths.of(params).hash_heads(variant)
    path.unlink(missing_ok=True)  # heads of an earlier setting must not be served with these codes
    source = "model" if kind == "learned" else kind
    summary = {"variant": variant, "checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
               "c2f": to_dict(params.c2f), "codes": source, "fitted": False}
    write_json(path.with_suffix(".json"), summary)
    logger.info(f"{variant}: coarse codes from {source!r}: no hash heads to fit")
    return summary


def run_c2f_train(params: RsitrParams, variant: str) -> dict[str, Any]:
    """Train the variant's hash heads on its train split; writes ``models/<variant>/hash_heads.{pt,json}``.

    Nothing is fitted (only ``hash_heads.json`` written) when the model has its own hash
    codes or ``c2f.codes`` is ``simhash`` / ``sign``.
    """
    v, checkpoint, device, model, loader, manifest = _variant_setup(params, variant)
    skipped = _no_fitting(params, variant, checkpoint, model_has_hash(model, device))
    if skipped is not None:
        return skipped
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
        "codes": "heads",
        "fitted": True,
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
    tracker.log_metrics({f"{prefix}.{k}": v for k, v in _flat_metrics(payload).items()})
    tracker.log_metrics({f"{prefix}.{k}": v for k, v in timings.items() if isinstance(v, (int, float))})
    tracker.log_artifact(ranks, "ranks/c2f")
    tracker.end("FINISHED")


def run_c2f_evaluate(params: RsitrParams, variant: str, *, track: bool = True) -> dict[str, Any]:
    """Coarse-to-fine evaluation of the variant on every test target; writes ``metrics/c2f/<variant>/*.json``."""
    v, checkpoint, device, model, loader, manifest = _variant_setup(params, variant)
    coder = variant_coder(params, variant, checkpoint, model_has_hash(model, device))
    paths = ProjectPaths.of(params)
    results: dict[str, Any] = {}
    for test_set, language in c2f_targets(params, variant):
        split = select_split(manifest, "test", datasets=[test_set], languages=[language],
                             normalize_arabic=params.text.normalize_arabic)
        evaluation = evaluate_coarse_to_fine(model, coder, split, loader, v.eval.batch_size, device, params.c2f)
        payload = c2f_payload(params, variant, test_set, language, evaluation)
        path = write_json(paths.metrics_file(variant, test_set, language, c2f=True), payload)
        ranks = save_ranks(paths.ranks_file(variant, test_set, language, c2f=True), evaluation["ranks"])
        results[path.name] = {**payload, "timings": evaluation["timings"]}
        if track:
            _log_to_variant_run(params, variant, payload, evaluation["timings"], ranks)
        _log_summary(variant, test_set, language, payload)
    return results


def c2f_targets(params: RsitrParams, variant: str) -> list[tuple[str, str]]:
    """The variant's evaluation targets in the caption languages of ``c2f.languages`` (all when empty)."""
    targets = evaluation_targets(params, variant)
    wanted = params.c2f.languages
    chosen = [(test_set, language) for test_set, language in targets if not wanted or language in wanted]
    if not chosen:
        raise ConfigError(f"variant {variant}: c2f.languages {list(wanted)} selects none of its evaluation languages "
                          f"{sorted({language for _, language in targets})}; set c2f.languages=[] for all of them")
    return chosen


def variant_coder(params: RsitrParams, variant: str, checkpoint: Path, own_hash: bool) -> Any:
    """The coarse codes of ``c2f.codes`` (``rsitr.retrieval.codes``): learned = own hash codes, else fitted heads."""
    kind = code_kind(params, own_hash)
    if kind == "simhash":
        return SimHashCoder(params.c2f.bits, params.c2f.simhash_seed)
    if kind == "sign":
        return SignCoder()
    return ModelHashCoder() if own_hash else HeadCoder(load_variant_heads(params, variant, checkpoint)[0])


_EXTRAS = ("coarse_metrics", "exhaustive_metrics", "dual_metrics", "exhaustive_ssm", "simhash", "codes", "bits",
           "fine_stage", "fine_share", "shortlist_recall_i2t", "shortlist_recall_t2i", "candidates_i2t",
           "candidates_t2i", "dual_shortlist_recall_i2t", "dual_shortlist_recall_t2i", "images", "captions")


def c2f_payload(params: RsitrParams, variant: str, test_set: str, language: str, evaluation: dict[str, Any]
                ) -> dict[str, Any]:
    """``metrics/c2f/<variant>/<set>.<lang>.json``: the c2f recalls (the headline) and what they sit beside."""
    v = params.variant(variant)
    return {
        "variant": variant, "label": f"{variant} + c2f", "method": v.method,
        "mode": "coarse_only" if params.c2f.coarse_only else "c2f", "test_set": test_set, "language": language,
        **evaluation["metrics"], **{k: evaluation.get(k) for k in _EXTRAS}, "c2f": to_dict(params.c2f),
    }


def _flat_metrics(payload: dict[str, Any]) -> dict[str, float]:
    """The extra c2f figures as MLflow metric names (no '@'): ``coarse.mR``, ``simhash.coarse.mR``, ..."""
    out = {k: float(payload[k]) for k in ("fine_share", "shortlist_recall_i2t", "shortlist_recall_t2i", "bits",
                                           "dual_shortlist_recall_i2t", "dual_shortlist_recall_t2i")
           if payload.get(k) is not None}
    for name, key in (("coarse", "coarse_metrics"), ("dual", "dual_metrics"), ("exhaustive", "exhaustive_metrics")):
        out.update({f"{name}.{m}": float(x) for m, x in (payload.get(key) or {}).items()})
    simhash = payload.get("simhash") or {}
    out.update({f"simhash.coarse.{m}": float(x) for m, x in (simhash.get("coarse_metrics") or {}).items()})
    out.update({f"simhash.{k}": float(simhash[k]) for k in ("shortlist_recall_i2t", "shortlist_recall_t2i")
                if k in simhash})
    ssm = payload.get("exhaustive_ssm") or {}
    out.update({f"exhaustive_ssm_sampled.{m}": float(x) for m, x in (ssm.get("metrics") or {}).items()})
    if ssm:
        out["exhaustive_ssm_sampled.all_pairs_seconds_estimate"] = float(ssm["all_pairs_seconds_estimate"])
    return out


def _log_summary(variant: str, test_set: str, language: str, payload: dict[str, Any]) -> None:
    exhaustive = payload.get("exhaustive_metrics") or {}
    simhash = (payload.get("simhash") or {}).get("coarse_metrics") or {}
    coarse = payload["coarse_metrics"]["mR"]
    verdict = "beat" if coarse > simhash.get("mR", float("inf")) else "do NOT beat"
    versus = (f"{payload['codes']} codes ({payload['bits']} bits) {verdict} SimHash (coarse mR "
              f"{simhash.get('mR', float('nan')):.2f})" if payload["codes"] != "simhash" else
              f"SimHash codes ({payload['bits']} bits)")
    logger.info(f"{variant} + c2f on {test_set} [{language}]: mR {payload['mR']:.2f} (fine: {payload['fine_stage']}; "
                f"coarse {coarse:.2f}, exhaustive {exhaustive.get('mR', float('nan')):.2f}); shortlist recall "
                f"i2t {payload['shortlist_recall_i2t']:.1f}% t2i {payload['shortlist_recall_t2i']:.1f}% (the exhaustive "
                f"dual ranking's top K: {payload.get('dual_shortlist_recall_i2t') or float('nan'):.1f}% / "
                f"{payload.get('dual_shortlist_recall_t2i') or float('nan'):.1f}%), "
                f"fine_share {payload['fine_share']:.4f}; {versus}")
