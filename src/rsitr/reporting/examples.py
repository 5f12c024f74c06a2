"""Top-k retrieval examples for sampled queries in both directions, as the papers' figures show.

``top_k_examples`` is pure (a score matrix in, ranked hits out); ``build_examples`` loads a
trained variant, scores one test split with the variant's own scorer and samples queries.
Rankings use the evaluation's tie rule (stable sort by score, descending; ties by index),
so a hit shown at rank 1 is the one R@1 counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rsitr.data.manifest import RetrievalSplit
from rsitr.retrieval.metrics import retrieval_metrics


@dataclass(frozen=True)
class Hit:
    """One retrieved item: an image index (text query) or a caption index (image query)."""

    index: int
    score: float
    correct: bool


@dataclass(frozen=True)
class Query:
    """A query (image or caption index), its top-k hits, and the rank of its first correct item."""

    index: int
    hits: tuple[Hit, ...]
    first_correct_rank: int  # 1-based


@dataclass
class RetrievalExamples:
    variant: str
    test_set: str
    language: str
    image_paths: list[str]
    captions: list[str]
    caption_image: np.ndarray  # [C]
    image_queries: list[Query]  # image -> text
    text_queries: list[Query]  # text -> image
    metrics: dict[str, float] = field(default_factory=dict)


def _ranking(row: np.ndarray) -> np.ndarray:
    return np.argsort(-row, kind="stable")


def top_k_examples(
    scores: np.ndarray, caption_image: np.ndarray, image_queries: list[int], text_queries: list[int], k: int = 5
) -> tuple[list[Query], list[Query]]:
    """Top-``k`` captions of each image query and top-``k`` images of each caption query.

    ``scores`` is ``[n_images, n_captions]``; a caption is correct for an image when
    ``caption_image[caption] == image``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    caption_image = np.asarray(caption_image)
    i2t = []
    for image in image_queries:
        order = _ranking(scores[image])  # [C]
        correct = caption_image[order] == image
        hits = tuple(Hit(int(c), float(scores[image, c]), bool(ok)) for c, ok in zip(order[:k], correct[:k]))
        i2t.append(Query(int(image), hits, int(np.argmax(correct)) + 1))
    t2i = []
    for caption in text_queries:
        order = _ranking(scores[:, caption])  # [N]
        correct = order == caption_image[caption]
        hits = tuple(Hit(int(i), float(scores[i, caption]), bool(ok)) for i, ok in zip(order[:k], correct[:k]))
        t2i.append(Query(int(caption), hits, int(np.argmax(correct)) + 1))
    return i2t, t2i


def sample_queries(n_images: int, n_captions: int, count: int, seed: int) -> tuple[list[int], list[int]]:
    """``count`` distinct images and ``count`` distinct captions, reproducibly."""
    rng = np.random.default_rng(seed)
    images = sorted(rng.choice(n_images, size=min(count, n_images), replace=False).tolist())
    captions = sorted(rng.choice(n_captions, size=min(count, n_captions), replace=False).tolist())
    return images, captions


def build_examples(
    split: RetrievalSplit, scores: np.ndarray, variant: str, test_set: str, language: str = "en", *,
    queries: int = 4, k: int = 5, seed: int = 0,
) -> RetrievalExamples:
    """Pick ``queries`` queries per direction of a scored test split (``scores [N, C]``)."""
    image_ids, caption_ids = sample_queries(split.num_images, len(split.captions), queries, seed)
    i2t, t2i = top_k_examples(scores, split.caption_image, image_ids, caption_ids, k)
    metrics = {key: float(value) for key, value in retrieval_metrics(scores, split.caption_image).items()}
    return RetrievalExamples(variant, test_set, language, list(split.image_paths), list(split.captions),
                             split.caption_image, i2t, t2i, metrics)
