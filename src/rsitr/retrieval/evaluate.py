"""Evaluate a retrieval model on one split with the standard RSITR protocol.

Encodes every image and caption once, scores them with the variant's own scorer
(``model.score``: cosine for CLIP, global + local for EBAKER), and computes R@1/5/10 in
both directions and mR (``rsitr.retrieval.metrics``). Also times each phase, as the
papers compare inference time (EBAKER Table 7). Given twin pairs (image indices of the
split), adds the twin accuracies of ``rsitr.retrieval.twins`` on the same score matrix.

It also returns the per-query ranks (``rsitr.retrieval.ranks.QueryRanks``, with the twin
pairs' outcomes), from which the recalls are computed, so a stored ranks file gives the
stored figures exactly and the bootstrap (``rsitr.retrieval.bootstrap``) needs no model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader

import numpy as np

from rsitr.retrieval.metrics import query_ranks
from rsitr.retrieval.ranks import QueryRanks, TwinOutcomes
from rsitr.retrieval.twins import twin_outcomes
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
    ``"ranks"`` is the :class:`QueryRanks` the recalls (and twin accuracies) are computed from.
    """
    image_embeddings, text_embeddings, timings = encode_split(model, split, loader, batch_size, device)
    start = time.perf_counter()
    scores = model.score(image_embeddings, text_embeddings)  # [N_images, N_captions]
    _sync(device)
    timings["scoring_s"] = time.perf_counter() - start
    scores = scores.float().cpu()  # [N, C]
    i2t, t2i = query_ranks(scores, split.caption_image)  # [N], [C]
    twins = TwinOutcomes(**twin_outcomes(scores, split.caption_image, twin_pairs)) if len(twin_pairs) else None
    ranks = QueryRanks(i2t=i2t, t2i=t2i, caption_image=np.asarray(split.caption_image, dtype=np.int64),
                       images=tuple(str(i) for i in split.image_ids), twins=twins)
    metrics = ranks.metrics()
    total = timings["image_encode_s"] + timings["text_encode_s"] + timings["scoring_s"]
    timings["total_s"] = total
    timings["images_per_s"] = split.num_images / max(timings["image_encode_s"], 1e-9)
    result = {
        "metrics": metrics,
        "timings": timings,
        "images": split.num_images,
        "captions": len(split.captions),
        "ranks": ranks,
    }
    if twins is not None:
        result["twins"] = twins.accuracy()
    return result
