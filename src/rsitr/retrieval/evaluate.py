"""Evaluate a retrieval model on one split with the standard RSITR protocol.

Encodes every image and caption once, scores them with the variant's own scorer
(``model.score``: cosine for CLIP, global + local for EBAKER), and computes R@1/5/10 in
both directions and mR (``rsitr.retrieval.metrics``). Also times each phase, as the
papers compare inference time (EBAKER Table 7). Given twin pairs (image indices of the
split), adds the twin accuracies of ``rsitr.retrieval.twins`` on the same score matrix.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

from rsitr.retrieval.metrics import retrieval_metrics
from rsitr.retrieval.twins import twin_accuracy
from rsitr.data.images import EvalImages, ImageLoader
from rsitr.data.manifest import RetrievalSplit


def _concat(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def encode_split(
    model: Any, split: RetrievalSplit, loader: ImageLoader, batch_size: int, device: torch.device
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, float]]:
    """Embeddings of every image and caption of ``split``, plus encode timings in seconds."""
    model.eval()
    images = DataLoader(EvalImages(split.image_paths, loader), batch_size=batch_size, shuffle=False)
    start = time.perf_counter()
    image_parts = [
        {k: v.float() for k, v in model.embed_images(batch.to(device)).items()} for batch in images
    ]
    _sync(device)
    image_seconds = time.perf_counter() - start
    start = time.perf_counter()
    text_parts = []
    for first in range(0, len(split.captions), batch_size):
        tokens = model.tokenize(split.captions[first : first + batch_size]).to(device)  # [b, L]
        text_parts.append({k: v.float() for k, v in model.embed_texts(tokens).items()})
    _sync(device)
    text_seconds = time.perf_counter() - start
    return _concat(image_parts), _concat(text_parts), {"image_encode_s": image_seconds, "text_encode_s": text_seconds}


@torch.no_grad()
def evaluate_split(
    model: Any, split: RetrievalSplit, loader: ImageLoader, batch_size: int, device: torch.device,
    twin_pairs: Sequence[tuple[int, int]] = (),
) -> dict[str, Any]:
    """The seven protocol numbers for ``split`` with timings; the score matrix is ``[N, C]``.

    With ``twin_pairs`` (image indices into ``split``), ``"twins"`` holds
    :func:`rsitr.retrieval.twins.twin_accuracy` of the same scores; without, it is absent.
    """
    image_embeddings, text_embeddings, timings = encode_split(model, split, loader, batch_size, device)
    start = time.perf_counter()
    scores = model.score(image_embeddings, text_embeddings)  # [N_images, N_captions]
    _sync(device)
    timings["scoring_s"] = time.perf_counter() - start
    scores = scores.float().cpu()  # [N, C]
    metrics = retrieval_metrics(scores, split.caption_image)
    total = timings["image_encode_s"] + timings["text_encode_s"] + timings["scoring_s"]
    timings["total_s"] = total
    timings["images_per_s"] = split.num_images / max(timings["image_encode_s"], 1e-9)
    result = {
        "metrics": metrics,
        "timings": timings,
        "images": split.num_images,
        "captions": len(split.captions),
    }
    if len(twin_pairs):
        result["twins"] = twin_accuracy(scores, split.caption_image, twin_pairs)
    return result
