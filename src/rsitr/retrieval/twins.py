"""Twin accuracy: can a model tell apart two images that differ in one fine-grained attribute?

Motivation. EBAKER (Ji et al., "Eliminate Before Align: A Remote Sensing Image-Text
Retrieval Framework with Keyword Explicit Reasoning", ACM MM 2024; ``docs/methods.md``)
argues that remote-sensing captions differ mostly in a few keywords (object counts, colours,
spatial relations) and adds Keyword Explicit Reasoning (KER) so the model attends to them.
Recall@K hardly measures this: a model that confuses two scenes differing in one keyword
loses at most one rank. The embedded synthetic benchmark therefore plants fine-grained
*twins* (``ground_truth.json["twins"]``: an original and a twin that changes exactly one of
count, colour or relation), and this module scores the model on those pairs only.

Definitions, for a score matrix ``S`` ``[n_images, n_captions]`` (higher = more similar),
the caption->image owner index ``caption_image`` ``[n_captions]`` and twin pairs ``(a, b)``
of image indices in the same split; every pair is used in both directions, ``a`` against
``b`` and ``b`` against ``a``:

* **t2i twin accuracy**: over every caption ``j`` of a twin image ``o`` (twin ``t``), the
  share with ``S[o, j] > S[t, j]``: the caption prefers its own image to the twin.
* **i2t twin accuracy**: over every twin image ``o`` (twin ``t``), the share with
  ``mean_j S[o, j] over o's captions > mean_j S[o, j] over t's captions``: the image
  prefers its own captions to the twin's. The MEAN over captions (not each caption) is
  used, so an image counts once whatever its caption count, and one weak caption (which
  need not mention the changed attribute) does not decide alone.
* **twin_acc** = mean of the two.

Comparisons are strict: a tie is a failure (the model did not tell the twins apart).
Figures are percentages (0..100), like the recalls of ``rsitr.retrieval.metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from rsitr.retrieval.metrics import _validate

__all__ = ["TWIN_METRICS", "twin_accuracy", "twin_index_pairs", "twin_outcomes"]

TWIN_METRICS = ("twin_acc", "twin_acc_t2i", "twin_acc_i2t", "twin_pairs")


def _to_pairs(twin_pairs: Any, n_images: int) -> np.ndarray:
    """``twin_pairs`` as an int64 ``[P, 2]`` array of distinct, in-range image indices."""
    pairs = np.asarray(twin_pairs, dtype=np.int64)
    if pairs.size == 0:
        raise ValueError("twin_pairs is empty; twin accuracy needs at least one pair")
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"twin_pairs must be [P, 2] image indices, got shape {tuple(pairs.shape)}")
    if ((pairs < 0) | (pairs >= n_images)).any():
        raise ValueError(f"twin_pairs hold an image index outside 0..{n_images - 1}")
    if (pairs[:, 0] == pairs[:, 1]).any():
        raise ValueError("a twin pair joins an image with itself")
    return pairs


def _expand(images: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every caption of each of ``images`` [D]: (row d of the caption [K], caption index [K])."""
    order = np.argsort(owner, kind="stable")  # [C] captions grouped by image
    counts = np.bincount(owner)  # [N] (every image owns >= 1 caption: validated)
    starts = np.cumsum(counts) - counts  # [N] first position of each image's captions in order
    per_row = counts[images]  # [D]
    rows = np.repeat(np.arange(images.size), per_row)  # [K]
    within = np.arange(rows.size) - np.repeat(np.cumsum(per_row) - per_row, per_row)  # [K]
    return rows, order[starts[images][rows] + within]  # [K], [K]


def twin_accuracy(similarity: Any, caption_image: Any, twin_pairs: Sequence[tuple[int, int]] | Any) -> dict[str, float]:
    """Twin accuracies (percent) of a score matrix on the given twin pairs (see the module doc).

    Args:
        similarity: numpy array or torch tensor [n_images, n_captions]; higher = more similar.
        caption_image: [n_captions] integers; ``caption_image[j]`` is the image owning caption j.
        twin_pairs: [P] pairs (or a [P, 2] array) of image indices of the same split.

    Returns:
        ``{"twin_acc", "twin_acc_t2i", "twin_acc_i2t", "twin_pairs"}``: the accuracies in
        0..100 and ``twin_pairs`` = P (an int).

    Raises:
        ValueError: empty pairs, bad indices, or what ``retrieval_metrics`` rejects.
    """
    scores, owner = _validate(similarity, caption_image)  # [N, C], [C]
    pairs = _to_pairs(twin_pairs, scores.shape[0])  # [P, 2]
    own = np.concatenate([pairs[:, 0], pairs[:, 1]])  # [D = 2P] the image judged
    twin = np.concatenate([pairs[:, 1], pairs[:, 0]])  # [D] its twin
    rows, captions = _expand(own, owner)  # [K] captions of the judged images
    t2i = scores[own[rows], captions] > scores[twin[rows], captions]  # [K]
    twin_rows, twin_captions = _expand(twin, owner)  # [K'] captions of their twins
    mean_own = np.bincount(rows, weights=scores[own[rows], captions], minlength=own.size) / np.bincount(
        rows, minlength=own.size)  # [D]
    mean_twin = np.bincount(twin_rows, weights=scores[own[twin_rows], twin_captions], minlength=own.size) / \
        np.bincount(twin_rows, minlength=own.size)  # [D]
    i2t = mean_own > mean_twin  # [D]
    t2i_acc, i2t_acc = 100.0 * float(t2i.mean()), 100.0 * float(i2t.mean())
    return {"twin_acc": (t2i_acc + i2t_acc) / 2, "twin_acc_t2i": t2i_acc, "twin_acc_i2t": i2t_acc,
            "twin_pairs": int(pairs.shape[0])}


def twin_outcomes(similarity: Any, caption_image: Any, twin_pairs: Sequence[tuple[int, int]] | Any
                  ) -> dict[str, np.ndarray]:
    """Per-pair twin decisions of a score matrix, the counts :func:`twin_accuracy` averages.

    Returns ``{"pairs": [P, 2], "t2i_wins": [P], "t2i_total": [P], "i2t_wins": [P]}`` (int64):
    per pair, how many captions of its two images preferred their own image (of how many),
    and how many of its two images (0..2) preferred their own captions. Summed over pairs
    they give ``twin_accuracy`` exactly; per pair they let a bootstrap resample pairs.
    """
    scores, owner = _validate(similarity, caption_image)  # [N, C], [C]
    pairs = _to_pairs(twin_pairs, scores.shape[0])  # [P, 2]
    n_pairs = pairs.shape[0]
    own = np.concatenate([pairs[:, 0], pairs[:, 1]])  # [D = 2P]
    twin = np.concatenate([pairs[:, 1], pairs[:, 0]])  # [D]
    rows, captions = _expand(own, owner)  # [K]
    t2i = scores[own[rows], captions] > scores[twin[rows], captions]  # [K]
    pair_of_row = rows % n_pairs  # [K] direction d belongs to pair d mod P
    twin_rows, twin_captions = _expand(twin, owner)  # [K']
    mean_own = np.bincount(rows, weights=scores[own[rows], captions], minlength=own.size) / np.bincount(
        rows, minlength=own.size)  # [D]
    mean_twin = np.bincount(twin_rows, weights=scores[own[twin_rows], twin_captions], minlength=own.size) / \
        np.bincount(twin_rows, minlength=own.size)  # [D]
    i2t = (mean_own > mean_twin).astype(np.int64)  # [D]
    return {
        "pairs": pairs,
        "t2i_wins": np.bincount(pair_of_row, weights=t2i, minlength=n_pairs).astype(np.int64),  # [P]
        "t2i_total": np.bincount(pair_of_row, minlength=n_pairs).astype(np.int64),  # [P]
        "i2t_wins": i2t[:n_pairs] + i2t[n_pairs:],  # [P]
    }


def twin_index_pairs(image_paths: Sequence[str], twins: Iterable[tuple[str, str]]) -> list[tuple[int, int]]:
    """Image-index pairs of ``twins`` (relative paths) among ``image_paths`` (one split's images).

    A relative path ``r`` matches the image whose path ends with ``r``'s components
    (``data/raw/synth/synth_sydney/images/1.tif`` ends with ``synth_sydney/images/1.tif``),
    so absolute and relative image paths both work. Pairs with a member missing from the
    split, or matching several images, are left out.
    """
    suffixes: dict[int, dict[tuple[str, ...], int | None]] = {}

    def find(relpath: str) -> int | None:
        parts = PurePosixPath(relpath.replace("\\", "/")).parts
        if len(parts) not in suffixes:
            table: dict[tuple[str, ...], int | None] = {}
            for index, path in enumerate(image_paths):
                key = PurePosixPath(str(path).replace("\\", "/")).parts[-len(parts):]
                table[key] = None if key in table else index  # None: ambiguous
            suffixes[len(parts)] = table
        return suffixes[len(parts)].get(parts) if parts else None

    out = []
    for original, twin in twins:
        a, b = find(original), find(twin)
        if a is not None and b is not None and a != b:
            out.append((a, b))
    return out
