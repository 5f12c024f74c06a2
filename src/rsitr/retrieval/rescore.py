"""The fine stage of coarse-to-fine retrieval: scorers of a query's shortlisted candidates.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024) re-scores only the K candidates the coarse
stage shortlists. Two settings:

* **Online, one query** against a gallery index (float16 memmaps): ``fine_rescore`` (the
  variant's full scorer, ``model.score``) and ``dense_rescore`` (inner products).
* **Evaluation, a whole test set** (``rsitr.retrieval.coarse_to_fine``): a ``FineScorer`` is
  any callable ``(direction, queries [Q], candidates [Q, K]) -> float32 [Q, K]`` scoring
  (query, candidate) pairs given by test-set index; ``ModelRescorer`` (the variant's
  ``model.score`` on the encoded embeddings) is the default one. ``PairRescorer`` is
  CFITR's own fine stage: the single-stream module (SSM) of a model with ``pair_scores``
  (``CfitrModel``), scoring the ``Q x K`` (image, caption) index pairs in batches. Either is
  passed to ``evaluate_coarse_to_fine(..., fine=...)`` as a ``FineScorerFactory``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import numpy as np
import torch

__all__ = [
    "Direction",
    "FineScorer",
    "FineScorerFactory",
    "ModelRescorer",
    "PAIR_BATCH",
    "PairRescorer",
    "has_pair_scores",
    "dense_rescore",
    "fine_rescore",
    "synchronize",
]

Embeddings = dict[str, torch.Tensor]
ScoreFn = Callable[[Embeddings, Embeddings], torch.Tensor]  # (image_embs, text_embs) -> [N_img, N_txt]
Direction = Literal["t2i", "i2t"]  # t2i: caption queries, image candidates; i2t: the reverse
PAIR_BATCH = 4096  # (image, caption) pairs per ``model.pair_scores`` call


def has_pair_scores(model: Any) -> bool:
    """Whether ``model`` has a single-stream pair scorer (``pair_scores``, e.g. ``CfitrModel``)."""
    return callable(getattr(model, "pair_scores", None))


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (so a timer measures it); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- online, one query


def dense_rescore(query: np.ndarray, gallery: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Inner products ``float32 [Q, K]`` of queries ``[Q, D]`` with their candidates.

    ``gallery`` may be a float16 memmap ``[N, D]``; only the ``Q * K`` candidate rows are read.
    """
    rows = torch.from_numpy(np.ascontiguousarray(gallery[indices.reshape(-1)]))  # [Q * K, D], e.g. float16
    rows = rows.float().reshape(*indices.shape, -1)  # [Q, K, D]; torch converts float16 ~10x faster than numpy
    queries = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32))  # [Q, D]
    return torch.bmm(rows, queries[:, :, None])[:, :, 0].numpy()  # [Q, K]


def fine_rescore(
    score_fn: ScoreFn,
    gallery: dict[str, Any],
    query: dict[str, torch.Tensor],
    indices: np.ndarray,
    *,
    gallery_is_image: bool = True,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """The full scorer on the candidate subset of ONE query: ``float32 [K]``.

    ``gallery`` maps embedding names to ``[N, ...]`` arrays (float16 memmaps); ``query`` to
    ``[1, ...]`` tensors. ``score_fn(image_embs, text_embs) -> [N_img, N_txt]`` is the
    variant's ``model.score``.
    """
    subset = {
        key: torch.from_numpy(np.asarray(array[indices], dtype=np.float32)).to(device) for key, array in gallery.items()
    }  # [K, ...]
    query = {key: value.to(device) for key, value in query.items()}
    if gallery_is_image:
        scores = score_fn(subset, query)[:, 0]  # [K, 1] -> [K]
    else:
        scores = score_fn(query, subset)[0]  # [1, K] -> [K]
    return scores.float().cpu().numpy()


# ----------------------------------------------------------------------------- evaluation, a test set


class FineScorer(Protocol):
    """Fine scores of (query, candidate) pairs of a test set, by index.

    ``direction`` ``"t2i"``: ``queries`` are caption indices and ``candidates`` image indices;
    ``"i2t"``: the reverse. ``queries int64 [Q]``, ``candidates int64 [Q, K]`` (row q holds the
    candidates of ``queries[q]``). Returns ``float32 [Q, K]``, higher = more similar; the
    scale is free (candidates are ranked among themselves only).
    """

    def __call__(self, direction: Direction, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray: ...


FineScorerFactory = Callable[[Any, Embeddings, Embeddings], FineScorer]  # (model, image_embs, text_embs) -> scorer


@dataclass(frozen=True)
class ModelRescorer:
    """The variant's full scorer (``model.score``: EBAKER global + local, else cosine) on the candidates.

    Each query is scored against its K candidates in one ``score_fn`` call
    (``[K, ...]`` candidates x ``[1, ...]`` query), on the embeddings' device.
    """

    score_fn: ScoreFn
    image_embeddings: Embeddings  # [N, ...]
    text_embeddings: Embeddings  # [C, ...]

    @classmethod
    def for_model(cls, model: Any, image_embeddings: Embeddings, text_embeddings: Embeddings) -> "ModelRescorer":
        """The default ``FineScorerFactory``."""
        return cls(model.score, image_embeddings, text_embeddings)

    def __call__(self, direction: Direction, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if direction not in ("t2i", "i2t"):
            raise ValueError(f"direction must be 't2i' or 'i2t', got {direction!r}")
        device = self.image_embeddings["global"].device
        scores = np.empty(candidates.shape, np.float32)  # [Q, K]
        for row, (query, cand) in enumerate(zip(queries, candidates)):
            scores[row] = self._score_one(direction, int(query), torch.from_numpy(cand).to(device))
        synchronize(device)
        return scores

    def _score_one(self, direction: Direction, query: int, cand: torch.Tensor) -> np.ndarray:
        """``float32 [K]``: one query against its candidates ``cand [K]``."""
        if direction == "t2i":
            images = {k: v[cand] for k, v in self.image_embeddings.items()}  # [K, ...]
            texts = {k: v[query : query + 1] for k, v in self.text_embeddings.items()}  # [1, ...]
            return self.score_fn(images, texts)[:, 0].float().cpu().numpy()
        images = {k: v[query : query + 1] for k, v in self.image_embeddings.items()}  # [1, ...]
        texts = {k: v[cand] for k, v in self.text_embeddings.items()}  # [K, ...]
        return self.score_fn(images, texts)[0].float().cpu().numpy()


@dataclass(frozen=True)
class PairRescorer:
    """The single-stream module's score of each (query, candidate) pair: ``model.pair_scores``.

    ``pair_scores(image_embs, text_embs, image_index [M], text_index [M]) -> [M]`` scores
    given index pairs (CFITR's SSM, ``CfitrModel``); the ``Q x K`` pairs of a call are sent
    in batches of ``batch`` pairs, in query order.
    """

    pair_fn: Callable[..., torch.Tensor]
    image_embeddings: Embeddings  # [N, ...]
    text_embeddings: Embeddings  # [C, ...]
    batch: int = PAIR_BATCH

    @classmethod
    def for_model(cls, model: Any, image_embeddings: Embeddings, text_embeddings: Embeddings) -> "PairRescorer":
        """The ``FineScorerFactory`` of a model with ``pair_scores``."""
        if not has_pair_scores(model):
            raise ValueError(f"{type(model).__name__} has no pair_scores (single-stream module)")
        return cls(model.pair_scores, image_embeddings, text_embeddings)

    def __call__(self, direction: Direction, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        if direction not in ("t2i", "i2t"):
            raise ValueError(f"direction must be 't2i' or 'i2t', got {direction!r}")
        candidates = np.asarray(candidates, dtype=np.int64)  # [Q, K]
        rows = np.broadcast_to(np.asarray(queries, dtype=np.int64)[:, None], candidates.shape)  # [Q, K]
        images, texts = (candidates, rows) if direction == "t2i" else (rows, candidates)
        return self.score_pairs(images.reshape(-1), texts.reshape(-1)).reshape(candidates.shape)  # [Q, K]

    def score_pairs(self, image_index: np.ndarray, text_index: np.ndarray) -> np.ndarray:
        """``float32 [M]`` SSM scores of the pairs ``(image_index[m], text_index[m])``."""
        out = np.empty(len(image_index), np.float32)  # [M]
        for start in range(0, len(image_index), self.batch):
            stop = start + self.batch
            scores = self.pair_fn(self.image_embeddings, self.text_embeddings,
                                  torch.from_numpy(np.ascontiguousarray(image_index[start:stop])),
                                  torch.from_numpy(np.ascontiguousarray(text_index[start:stop])))  # [m]
            out[start:stop] = scores.float().cpu().numpy()
        return out
