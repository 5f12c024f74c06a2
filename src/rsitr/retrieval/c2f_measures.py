"""What a coarse-to-fine evaluation reports beside its ranking: the ceiling and the references.

* ``shortlist_recall``: share (percent) of queries whose true match is among their K
  candidates (i2t: any of the image's captions), per direction: the ceiling of c2f.
* ``coarse_report``: coarse mR and shortlist recall of a set of codes (e.g. the SimHash
  baseline at the learned codes' bits, on the same K).
* ``sampled_exhaustive``: the exhaustive single-stream ranking estimated on a seeded sample
  of queries (every pair is ~N x C SSM calls, too slow on CPU): its recalls on the sample
  and the measured seconds extrapolated to all pairs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rsitr.retrieval.metrics import i2t_ranks, recall_at_k, retrieval_metrics, t2i_ranks

__all__ = ["coarse_report", "sampled_exhaustive", "shortlist_recall"]


def shortlist_recall(cand_i2t: np.ndarray, cand_t2i: np.ndarray, caption_image: np.ndarray) -> dict[str, float]:
    """Percent of queries with their true match in the shortlist: ``{"i2t": ..., "t2i": ...}``.

    ``cand_i2t [N, K]`` captions of each image, ``cand_t2i [C, K]`` images of each caption,
    ``caption_image [C]`` the image of each caption.
    """
    owner = np.asarray(caption_image, dtype=np.int64)  # [C]
    t2i_hit = (np.asarray(cand_t2i) == owner[:, None]).any(axis=1)  # [C]
    i2t_hit = (owner[np.asarray(cand_i2t)] == np.arange(cand_i2t.shape[0])[:, None]).any(axis=1)  # [N]
    return {"i2t": 100.0 * float(i2t_hit.mean()), "t2i": 100.0 * float(t2i_hit.mean())}


def coarse_report(coarse: np.ndarray, cand_i2t: np.ndarray, cand_t2i: np.ndarray, caption_image: np.ndarray,
                  **extra: Any) -> dict[str, Any]:
    """Coarse-stage recalls of ``coarse [N, C]`` and the shortlist recall of its candidates."""
    recall = shortlist_recall(cand_i2t, cand_t2i, caption_image)
    return {**extra, "coarse_metrics": retrieval_metrics(coarse, caption_image),
            "shortlist_recall_i2t": recall["i2t"], "shortlist_recall_t2i": recall["t2i"]}


def _sample(count: int, total: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct indices of ``range(total)`` (all when ``count`` is 0 or >= total), sorted."""
    if count <= 0 or count >= total:
        return np.arange(total)
    return np.sort(rng.choice(total, size=count, replace=False))


def sampled_exhaustive(score_pairs: Any, caption_image: np.ndarray, n_images: int, sample: tuple[int, int],
                       seed: int = 0) -> dict[str, Any]:
    """The exhaustive pair scorer on ``sample = (image queries, caption queries)`` drawn with ``seed``.

    ``score_pairs(image_index [M], text_index [M]) -> float32 [M]`` (``PairRescorer.score_pairs``).
    Each sampled image is scored against every caption, each sampled caption against every
    image (every pair once when both samples are whole); ranks follow the protocol's tie rule. Returns the recalls on the sample
    (``"sampled": True``), the queries and pairs scored, the seconds, and those seconds
    extrapolated to all ``N x C`` pairs.
    """
    owner = np.asarray(caption_image, dtype=np.int64)  # [C]
    n_captions = len(owner)
    rng = np.random.default_rng(seed)
    images, captions = _sample(sample[0], n_images, rng), _sample(sample[1], n_captions, rng)
    start = time.perf_counter()
    rows = score_pairs(np.repeat(images, n_captions), np.tile(np.arange(n_captions), len(images)))  # [n_i * C]
    every = len(images) == n_images and len(captions) == n_captions
    cols = None if every else score_pairs(np.tile(np.arange(n_images), len(captions)), np.repeat(captions, n_images))
    seconds = time.perf_counter() - start
    i2t = np.zeros((n_images, n_captions))  # [N, C]; only the sampled rows are read
    i2t[images] = rows.reshape(len(images), n_captions)
    t2i = i2t if every else np.zeros((n_images, n_captions))  # only the sampled columns are read
    if not every:
        t2i[:, captions] = cols.reshape(len(captions), n_images).T
    image_ranks, caption_ranks = i2t_ranks(i2t, owner)[images], t2i_ranks(t2i, owner)[captions]
    metrics = {f"i2t_R{k}": recall_at_k(image_ranks, k) for k in (1, 5, 10)}
    metrics.update({f"t2i_R{k}": recall_at_k(caption_ranks, k) for k in (1, 5, 10)})
    metrics["mR"] = float(np.mean(list(metrics.values())))
    pairs = int(rows.size + (0 if cols is None else cols.size))
    return {"sampled": bool(len(images) < n_images or len(captions) < n_captions), "metrics": metrics,
            "image_queries": int(len(images)), "caption_queries": int(len(captions)), "pairs": pairs,
            "seconds": seconds, "all_pairs": n_images * n_captions,
            "all_pairs_seconds_estimate": seconds / max(pairs, 1) * n_images * n_captions, "seed": int(seed)}
