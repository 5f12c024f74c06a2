"""Coarse-to-fine retrieval as an evaluation mode, and the training of its hash heads.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024, doi:10.1109/LGRS.2024.3494543):

* **Heads.** ``train_hash_heads`` encodes the train split once with a trained variant
  (frozen) and fits the two hash heads on the global embeddings (``hash_head.py``).
  They are saved beside the checkpoint, ``models/<variant>/hash_heads.pt``, with the
  packed codes of the training captions and images (the PPSR reference sets of online
  search) and the sha256 of the checkpoint they belong to.
* **Evaluation.** ``evaluate_coarse_to_fine`` encodes the test split, computes the
  Hamming similarity matrix of the codes (``1 - 2 d / bits``, ``[N_img, N_txt]``),
  optionally applies PPSR to the whole matrix (row and column top-k means, as CFITR
  does on its test set), and for each query in each direction re-scores only its top-K
  candidates with the variant's full scorer (``model.score``: EBAKER global + local,
  else cosine). Candidates rank above every other item, which keep their coarse order.
  It returns the seven protocol numbers of the coarse-to-fine ranking, plus those of the
  coarse stage alone and of exhaustive fine scoring, and timings.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from rsitr.errors import ModelError
from rsitr.retrieval.binary_codes import hamming_distance
from rsitr.retrieval.hash_head import HASH_HEADS_FILE, HashHeads, fit_hash_heads, load_hash_heads, save_hash_heads
from rsitr.retrieval.metrics import i2t_ranks, recall_at_k, retrieval_metrics, t2i_ranks
from rsitr.retrieval.ppsr import ppsr as ppsr_rescore
from rsitr.retrieval.search import hamming_similarity, stable_topk

__all__ = [
    "coarse_to_fine_matrices",
    "evaluate_coarse_to_fine",
    "hash_heads_path",
    "load_variant_heads",
    "metrics_from_matrices",
    "run_c2f_evaluate",
    "run_c2f_train",
    "train_hash_heads",
]

Embeddings = dict[str, torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _c2f(params: Any) -> Any:
    """The ``c2f`` section from ``RsitrParams`` or a ``CoarseToFineParams`` itself."""
    return getattr(params, "c2f", params)


# ----------------------------------------------------------------------------- encoding


@torch.no_grad()
def encode_globals(
    model: Any, split: Any, loader: Any, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global embeddings only (no token features kept): images ``[N, D]``, captions ``[C, D]`` on CPU."""
    from torch.utils.data import DataLoader

    from rsitr.training.data import EvalImages

    model.eval()
    images = DataLoader(EvalImages(split.image_paths, loader), batch_size=batch_size, shuffle=False)
    image_parts = [model.embed_images(batch.to(device))["global"].float().cpu() for batch in images]
    text_parts = [
        model.embed_texts(model.tokenize(split.captions[i : i + batch_size]).to(device))["global"].float().cpu()
        for i in range(0, len(split.captions), batch_size)
    ]
    return torch.cat(image_parts), torch.cat(text_parts)


# ----------------------------------------------------------------------------- training


def train_hash_heads(
    model: Any, split: Any, loader: Any, params: Any, device: torch.device | str
) -> tuple[HashHeads, list[dict[str, float]]]:
    """Fit CFITR hash heads on the frozen ``model``'s embeddings of ``split`` (the train split).

    Args:
        params: ``RsitrParams`` (uses ``c2f``, ``seed``, ``eval.batch_size``) or a
            ``CoarseToFineParams``.

    Returns:
        ``(heads, history)``: heads in eval mode on CPU, with ``reference_codes`` set to the
        packed codes of the split's captions (``"text"``) and images (``"image"``); history
        holds the per-epoch means of the loss terms.
    """
    device = torch.device(device)
    c2f = _c2f(params)
    seed = int(getattr(params, "seed", 0))
    encode_batch = int(getattr(getattr(params, "eval", None), "batch_size", 256))
    image_features, text_features = encode_globals(model, split, loader, encode_batch, device)
    heads, history = fit_hash_heads(
        image_features, text_features, split.caption_image, c2f, device=device, seed=seed
    )
    heads.reference_codes = {"text": heads.pack("text", text_features), "image": heads.pack("image", image_features)}
    return heads, history


def hash_heads_path(params: Any, variant: str) -> Path:
    """``models/<variant>/hash_heads.pt``, beside the variant's checkpoint."""
    return Path(params.paths.models) / variant / HASH_HEADS_FILE


def load_variant_heads(params: Any, variant: str, checkpoint: str | Path | None = None) -> tuple[HashHeads, dict[str, Any]]:
    """The variant's saved heads; with ``checkpoint``, refuse heads trained for another one."""
    from rsitr.retrieval.index import sha256_file

    heads, meta = load_hash_heads(hash_heads_path(params, variant))
    if checkpoint is not None and meta.get("checkpoint_sha256") not in (None, sha256_file(checkpoint)):
        raise ModelError(
            f"hash heads of {variant} were trained on another checkpoint than {str(checkpoint)!r}; "
            f"re-run `rsitr c2f train --variant {variant}`"
        )
    return heads, meta


# ----------------------------------------------------------------------------- ranking


def coarse_to_fine_matrices(
    score_fn: Callable[[Embeddings, Embeddings], torch.Tensor] | None,
    image_embeddings: Embeddings,
    text_embeddings: Embeddings,
    image_codes: np.ndarray,
    text_codes: np.ndarray,
    *,
    candidates: int = 70,
    ppsr: bool = True,
    ppsr_k: int = 10,
    coarse_only: bool = False,
) -> dict[str, Any]:
    """The coarse-to-fine ranking matrices of a test set, one per direction.

    Args:
        score_fn: the full scorer ``(image_embs, text_embs) -> [n_img, n_txt]`` (``model.score``).
        image_embeddings, text_embeddings: dicts of ``[N, ...]`` / ``[C, ...]`` tensors.
        image_codes, text_codes: packed codes ``uint8 [N, B]`` / ``[C, B]``.

    Returns:
        ``{"i2t": [N, C] float64 (rank captions along rows), "t2i": [N, C] float64 (rank
        images along columns), "coarse": [N, C] (PPSR-adjusted when ``ppsr``),
        "candidates_i2t": [N, K], "candidates_t2i": [C, K], "timings": {...}}``. In both
        matrices every candidate of a query scores above every non-candidate; candidates
        are ordered by the fine score, the rest by the coarse score.
    """
    timings: dict[str, float] = {}
    n_images, n_captions = image_codes.shape[0], text_codes.shape[0]
    bits = 8 * image_codes.shape[1]
    start = time.perf_counter()
    coarse = hamming_similarity(hamming_distance(image_codes, text_codes), bits).astype(np.float64)  # [N, C]
    timings["coarse_s"] = time.perf_counter() - start
    start = time.perf_counter()
    if ppsr:
        coarse = ppsr_rescore(coarse, k=ppsr_k)  # [N, C]
    timings["ppsr_s"] = time.perf_counter() - start
    start = time.perf_counter()
    cand_t2i = stable_topk(coarse.T, min(candidates, n_images))  # [C, K] images per caption
    cand_i2t = stable_topk(coarse, min(candidates, n_captions))  # [N, K] captions per image
    timings["select_s"] = time.perf_counter() - start
    result: dict[str, Any] = {"coarse": coarse, "candidates_i2t": cand_i2t, "candidates_t2i": cand_t2i}
    if coarse_only or score_fn is None:
        timings["fine_s"] = 0.0
        timings["fine_pairs"] = 0
        result.update(i2t=coarse, t2i=coarse, timings=timings)
        return result
    device = image_embeddings["global"].device
    fine_t2i = np.full((n_images, n_captions), np.nan)  # [N, C]
    fine_i2t = np.full((n_images, n_captions), np.nan)
    start = time.perf_counter()
    for j in range(n_captions):
        cand = torch.from_numpy(cand_t2i[j]).to(device)
        images = {k: v[cand] for k, v in image_embeddings.items()}  # [K, ...]
        texts = {k: v[j : j + 1] for k, v in text_embeddings.items()}  # [1, ...]
        fine_t2i[cand_t2i[j], j] = score_fn(images, texts)[:, 0].float().cpu().numpy()
    for i in range(n_images):
        cand = torch.from_numpy(cand_i2t[i]).to(device)
        images = {k: v[i : i + 1] for k, v in image_embeddings.items()}  # [1, ...]
        texts = {k: v[cand] for k, v in text_embeddings.items()}  # [K, ...]
        fine_i2t[i, cand_i2t[i]] = score_fn(images, texts)[0].float().cpu().numpy()
    _sync(device)
    timings["fine_s"] = time.perf_counter() - start
    timings["fine_pairs"] = int(cand_t2i.size + cand_i2t.size)
    result["i2t"] = _two_tier(fine_i2t, coarse)
    result["t2i"] = _two_tier(fine_t2i, coarse)
    result["timings"] = timings
    return result


def _two_tier(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Candidates (finite ``fine``) shifted above the largest coarse score; others keep ``coarse``."""
    mask = np.isfinite(fine)
    shift = float(coarse.max()) - float(np.nanmin(fine)) + 1.0
    return np.where(mask, fine + shift, coarse)


def metrics_from_matrices(i2t: np.ndarray, t2i: np.ndarray, caption_image: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """The seven protocol numbers, i2t ranks from ``i2t`` and t2i ranks from ``t2i`` (``[N, C]``)."""
    image_ranks = i2t_ranks(i2t, caption_image)  # [N]
    caption_ranks = t2i_ranks(t2i, caption_image)  # [C]
    result = {f"i2t_R{k}": recall_at_k(image_ranks, k) for k in ks}
    result.update({f"t2i_R{k}": recall_at_k(caption_ranks, k) for k in ks})
    result["mR"] = float(np.mean(list(result.values())))
    return result


@torch.no_grad()
def evaluate_coarse_to_fine(
    model: Any,
    hash_heads: HashHeads,
    split: Any,
    loader: Any,
    batch_size: int,
    device: torch.device | str,
    c2f_params: Any,
    *,
    exhaustive: bool = True,
) -> dict[str, Any]:
    """Coarse-to-fine evaluation of one split; same metric keys as ``evaluate_split``.

    Args:
        c2f_params: ``CoarseToFineParams`` (``candidates``, ``ppsr``, ``ppsr_k``, ``coarse_only``).
        exhaustive: also score every pair with ``model.score`` and report its metrics
            (``exhaustive_metrics``) and time, the reference c2f approximates.

    Returns:
        ``{"metrics": {i2t_R1..mR}, "coarse_metrics": {...}, "exhaustive_metrics": {...}
        (when asked), "timings": {...}, "images", "captions", "candidates", "ppsr",
        "coarse_only"}``.
    """
    from rsitr.retrieval.evaluate import encode_split

    device = torch.device(device)
    c2f = _c2f(c2f_params)
    image_embs, text_embs, timings = encode_split(model, split, loader, batch_size, device)
    hash_heads = hash_heads.to(device).eval()
    start = time.perf_counter()
    image_codes = hash_heads.pack("image", image_embs["global"])  # [N, B]
    text_codes = hash_heads.pack("text", text_embs["global"])  # [C, B]
    timings["hash_s"] = time.perf_counter() - start
    ranking = coarse_to_fine_matrices(
        model.score, image_embs, text_embs, image_codes, text_codes,
        candidates=c2f.candidates, ppsr=c2f.ppsr, ppsr_k=c2f.ppsr_k, coarse_only=c2f.coarse_only,
    )
    timings.update(ranking["timings"])
    owner = split.caption_image
    metrics = metrics_from_matrices(ranking["i2t"], ranking["t2i"], owner)
    result: dict[str, Any] = {
        "metrics": metrics,
        "coarse_metrics": retrieval_metrics(ranking["coarse"], owner),
        "images": split.num_images,
        "captions": len(split.captions),
        "candidates": int(c2f.candidates),
        "ppsr": bool(c2f.ppsr),
        "coarse_only": bool(c2f.coarse_only),
    }
    queries = split.num_images + len(split.captions)
    timings["search_s"] = sum(timings[k] for k in ("coarse_s", "ppsr_s", "select_s", "fine_s"))
    timings["search_ms_per_query"] = 1000.0 * timings["search_s"] / queries
    timings["total_s"] = timings["image_encode_s"] + timings["text_encode_s"] + timings["hash_s"] + timings["search_s"]
    if exhaustive:
        start = time.perf_counter()
        scores = model.score(image_embs, text_embs)  # [N, C]
        _sync(device)
        timings["exhaustive_scoring_s"] = time.perf_counter() - start
        timings["exhaustive_ms_per_query"] = 1000.0 * timings["exhaustive_scoring_s"] / queries
        result["exhaustive_metrics"] = retrieval_metrics(scores.float().cpu(), owner)
    result["timings"] = timings
    return result


# ----------------------------------------------------------------------------- stages


def _variant_setup(params: Any, variant: str):
    from rsitr.training.checkpoint import load_trained_model
    from rsitr.training.data import ImageLoader, read_manifest
    from rsitr.training.trainer import CHECKPOINT_BEST, manifest_path, model_dir, resolve_device

    v = params.variant(variant)
    checkpoint = model_dir(params, variant) / CHECKPOINT_BEST
    device = resolve_device(v.train.device)
    model = load_trained_model(params, v, checkpoint).to(device)
    loader = ImageLoader(model.image_size, model.mean, model.std, cache=False)
    return v, checkpoint, device, model, loader, read_manifest(manifest_path(params))


def run_c2f_train(params: Any, variant: str) -> dict[str, Any]:
    """Train the variant's hash heads on its train split; writes ``models/<variant>/hash_heads.{pt,json}``."""
    from rsitr.config import to_dict
    from rsitr.retrieval.index import sha256_file
    from rsitr.training.data import select_split

    v, checkpoint, device, model, loader, manifest = _variant_setup(params, variant)
    split = select_split(manifest, "train", datasets=v.train.datasets, languages=v.train.languages)
    start = time.perf_counter()
    heads, history = train_hash_heads(model, split, loader, params, device)
    seconds = time.perf_counter() - start
    path = hash_heads_path(params, variant)
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
    path.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    final = history[-1] if history else {}
    print(f"{variant}: hash heads ({heads.bits} bits) trained in {seconds:.1f}s, final loss {final.get('loss', float('nan')):.4f} -> {path}")
    return summary


def c2f_metrics_file(params: Any, variant: str, test_set: str, language: str) -> Path:
    """``metrics/c2f/<variant>/<test_set>.json`` (English) or ``<test_set>.<lang>.json``.

    Kept apart from ``metrics/<variant>/`` (the evaluate stage's output) so DVC outputs never overlap.
    """
    suffix = "" if language == "en" else f".{language}"
    return Path(params.paths.metrics) / "c2f" / variant / f"{test_set}{suffix}.json"


def _log_to_variant_run(params: Any, variant: str, payload: dict[str, Any]) -> None:
    """Add the c2f figures to the variant's MLflow run (``test.<set>.<lang>.c2f.<metric>``)."""
    from rsitr.tracking.mlflow_tracking import Tracker
    from rsitr.training.stages import RUN_FILE
    from rsitr.training.trainer import model_dir

    run_file = model_dir(params, variant) / RUN_FILE
    if not run_file.is_file():
        return
    tracker = Tracker.start(params, run_name=variant, tags={}, run_id=json.loads(run_file.read_text())["run_id"])
    prefix = f"test.{payload['test_set']}.{payload['language']}.c2f"
    keys = ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR")
    tracker.log_metrics({f"{prefix}.{k}": payload[k] for k in keys})
    tracker.log_metrics({f"{prefix}.{k}": v for k, v in payload["timings"].items() if isinstance(v, (int, float))})
    tracker.end("FINISHED")


def run_c2f_evaluate(params: Any, variant: str, *, track: bool = True) -> dict[str, Any]:
    """Coarse-to-fine evaluation of the variant on every test target; writes ``metrics/c2f/<variant>/*.json``."""
    from rsitr.config import to_dict
    from rsitr.training.data import select_split
    from rsitr.training.stages import evaluation_targets

    v, checkpoint, device, model, loader, manifest = _variant_setup(params, variant)
    heads, meta = load_variant_heads(params, variant, checkpoint)
    results: dict[str, Any] = {}
    for test_set, language in evaluation_targets(params, variant):
        split = select_split(manifest, "test", datasets=[test_set], languages=[language])
        evaluation = evaluate_coarse_to_fine(model, heads, split, loader, v.eval.batch_size, device, params.c2f)
        payload = {
            "variant": variant,
            "label": f"{variant} + c2f",
            "method": v.method,
            "mode": "coarse_only" if params.c2f.coarse_only else "c2f",
            "test_set": test_set,
            "language": language,
            **evaluation["metrics"],
            "coarse_metrics": evaluation["coarse_metrics"],
            "exhaustive_metrics": evaluation.get("exhaustive_metrics"),
            "images": evaluation["images"],
            "captions": evaluation["captions"],
            "timings": evaluation["timings"],
            "c2f": to_dict(params.c2f),
            "checkpoint": str(checkpoint),
            "hash_heads": str(hash_heads_path(params, variant)),
            "device": str(device),
        }
        path = c2f_metrics_file(params, variant, test_set, language)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2) + "\n")
        results[path.name] = payload
        if track:
            _log_to_variant_run(params, variant, payload)
        exhaustive = evaluation.get("exhaustive_metrics") or {}
        print(
            f"{variant} + c2f on {test_set} [{language}]: mR {payload['mR']:.2f} "
            f"(coarse {evaluation['coarse_metrics']['mR']:.2f}, exhaustive {exhaustive.get('mR', float('nan')):.2f})"
        )
    return results
