"""Recall@K metrics of the standard remote-sensing image-text retrieval (RSITR) protocol.

Every RSITR paper (RSICD / RSITMD / UCM benchmarks; e.g. Yuan et al., "Exploring a
Fine-Grained Multiscale Method for Cross-Modal Remote Sensing Image Retrieval", TGRS 2022,
and the papers in ``docs/methods.md``) evaluates a similarity matrix ``S`` of shape
``[n_images, n_captions]`` as follows:

* **Image-to-text (i2t).** Image ``i`` ranks all captions by ``S[i, :]``. Its rank is the
  BEST (smallest) rank reached by any of its own captions. ``R@K`` is the percentage of
  images whose best rank is ``< K`` (ranks are 0-based).
* **Text-to-image (t2i).** Caption ``j`` ranks all images by ``S[:, j]``. ``R@K`` is the
  percentage of captions whose own image has rank ``< K``.
* **mR** is the mean of the six numbers i2t R@1/5/10 and t2i R@1/5/10.

Captions are tied to images by an explicit ``caption_image`` index
(``caption_image[j]`` = image of caption ``j``), never by position arithmetic, and an image
may own any number (>= 1) of captions.

Tie rule
--------
RSICD and UCM contain identical captions for different images, so equal scores are real.
Every ranking here is a *stable sort by score, descending, ties broken by ascending index*
of the ranked item. Hence the 0-based rank of item ``x`` in a list of scores ``s`` is::

    rank(x) = #{y : s[y] > s[x]} + #{y : s[y] == s[x] and y < x}

i.e. the position in ``sorted(range(n), key=lambda y: (-s[y], y))``. It is deterministic
and pessimistic by index: a tied competitor with a smaller index is ranked ahead of the
item, one with a larger index behind it (so item 0 wins every tie it is in). NaN
scores are rejected because they have no place in such an order.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "caption_image_from_counts",
    "i2t_ranks",
    "query_ranks",
    "recall_at_k",
    "retrieval_metrics",
    "t2i_ranks",
]

# Upper bound on the number of elements of a temporary [rows, cols] comparison block.
_BLOCK_ELEMENTS = 1 << 23


def _to_numpy_scores(similarity: Any) -> np.ndarray:
    """Return ``similarity`` (numpy array or torch tensor) as a real 2-D numpy array."""
    if hasattr(similarity, "detach") and hasattr(similarity, "cpu"):  # torch.Tensor
        tensor = similarity.detach().cpu()
        if tensor.is_complex():
            raise ValueError("similarity must be real-valued, got a complex tensor")
        if not tensor.is_floating_point():
            tensor = tensor.double()
        elif str(tensor.dtype) == "torch.bfloat16":  # numpy has no bfloat16; exact upcast
            tensor = tensor.float()
        array = tensor.numpy()
    else:
        array = np.asarray(similarity)
    if array.dtype.kind == "c":
        raise ValueError("similarity must be real-valued, got a complex array")
    if array.dtype.kind not in "fiub":
        raise ValueError(f"similarity must be a numeric array, got dtype {array.dtype}")
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"similarity must be 2-D [n_images, n_captions], got shape {tuple(array.shape)}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"similarity is empty (shape {tuple(array.shape)})")
    if np.isnan(array).any():
        raise ValueError("similarity contains NaN; the ranking is undefined")
    return array


def _to_index_array(caption_image: Any) -> np.ndarray:
    """Return ``caption_image`` (sequence, numpy array or torch tensor) as an int64 vector."""
    if hasattr(caption_image, "detach") and hasattr(caption_image, "cpu"):  # torch.Tensor
        caption_image = caption_image.detach().cpu().numpy()
    array = np.asarray(caption_image)
    if array.ndim != 1:
        raise ValueError(
            f"caption_image must be 1-D [n_captions], got shape {tuple(array.shape)}"
        )
    if array.size and array.dtype.kind not in "iu":
        raise ValueError(
            f"caption_image must hold integer image indices, got dtype {array.dtype}"
        )
    return array.astype(np.int64, copy=False)


def _validate(similarity: Any, caption_image: Any) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes and the caption->image index; return (scores, caption_image)."""
    scores = _to_numpy_scores(similarity)  # [N, C]
    owner = _to_index_array(caption_image)  # [C]
    n_images, n_captions = scores.shape
    if owner.shape[0] != n_captions:
        raise ValueError(
            f"caption_image has {owner.shape[0]} entries but similarity has {n_captions} "
            f"caption columns (shape {tuple(scores.shape)}); they must match"
        )
    bad = (owner < 0) | (owner >= n_images)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"caption_image[{j}] = {int(owner[j])} is not a valid image index "
            f"for {n_images} images (valid: 0..{n_images - 1})"
        )
    counts = np.bincount(owner, minlength=n_images)  # [N]
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        shown = ", ".join(str(int(i)) for i in missing[:10])
        more = f" (and {missing.size - 10} more)" if missing.size > 10 else ""
        raise ValueError(
            f"{missing.size} image(s) have no caption in caption_image: {shown}{more}; "
            "every image needs at least one caption"
        )
    return scores, owner


def caption_image_from_counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Caption->image index for images owning ``counts[i]`` consecutive captions each.

    ``caption_image_from_counts([5, 5, 3])`` -> ``[0,0,0,0,0, 1,1,1,1,1, 2,2,2]``.
    """
    array = np.asarray(counts)
    if array.ndim != 1:
        raise ValueError(f"counts must be 1-D, got shape {tuple(array.shape)}")
    if array.size == 0:
        raise ValueError("counts is empty; at least one image is needed")
    if array.dtype.kind not in "iu":
        raise ValueError(f"counts must be integers, got dtype {array.dtype}")
    if (array < 1).any():
        i = int(np.flatnonzero(array < 1)[0])
        raise ValueError(f"counts[{i}] = {int(array[i])}; every image needs >= 1 caption")
    return np.repeat(np.arange(array.size, dtype=np.int64), array)  # [sum(counts)]


def _i2t_ranks(scores: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Best 0-based rank of each image's own captions (inputs already validated)."""
    n_images, n_captions = scores.shape
    caption_idx = np.arange(n_captions)  # [C]
    own = scores[owner, caption_idx]  # [C] score of each caption under its own image
    # Under the total order (score desc, index asc) the best-ranked own caption of image i
    # is the one with the highest score, smallest index among equals; its rank is the
    # minimum over all own captions. lexsort's last key is the primary one.
    order = np.lexsort((caption_idx, -own, owner))  # [C] grouped by image, best first
    first = np.ones(n_captions, dtype=bool)  # [C]
    first[1:] = owner[order][1:] != owner[order][:-1]
    best = order[first]  # [N] best own caption per image (images ascend, all present)
    threshold = own[best]  # [N]
    ranks = np.empty(n_images, dtype=np.int64)  # [N]
    step = max(1, _BLOCK_ELEMENTS // n_captions)
    for start in range(0, n_images, step):
        stop = min(start + step, n_images)
        block = scores[start:stop]  # [b, C]
        thr = threshold[start:stop, None]  # [b, 1]
        higher = (block > thr).sum(axis=1)  # [b]
        tied_before = ((block == thr) & (caption_idx[None, :] < best[start:stop, None])).sum(
            axis=1
        )  # [b]
        ranks[start:stop] = higher + tied_before
    return ranks


def _t2i_ranks(scores: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """0-based rank of each caption's own image (inputs already validated)."""
    n_images, n_captions = scores.shape
    image_idx = np.arange(n_images)[:, None]  # [N, 1]
    own = scores[owner, np.arange(n_captions)]  # [C]
    ranks = np.empty(n_captions, dtype=np.int64)  # [C]
    step = max(1, _BLOCK_ELEMENTS // n_images)
    for start in range(0, n_captions, step):
        stop = min(start + step, n_captions)
        block = scores[:, start:stop]  # [N, b]
        thr = own[None, start:stop]  # [1, b]
        higher = (block > thr).sum(axis=0)  # [b]
        tied_before = ((block == thr) & (image_idx < owner[None, start:stop])).sum(axis=0)  # [b]
        ranks[start:stop] = higher + tied_before
    return ranks


def i2t_ranks(similarity: Any, caption_image: Any) -> np.ndarray:
    """Image-to-text rank of every image: the best 0-based rank among its own captions.

    similarity: [n_images, n_captions] (numpy or torch); caption_image: [n_captions].
    Returns int64 [n_images]. Ties follow the module's rule (score desc, then caption index).
    """
    scores, owner = _validate(similarity, caption_image)
    return _i2t_ranks(scores, owner)


def t2i_ranks(similarity: Any, caption_image: Any) -> np.ndarray:
    """Text-to-image rank of every caption: the 0-based rank of its own image.

    similarity: [n_images, n_captions] (numpy or torch); caption_image: [n_captions].
    Returns int64 [n_captions]. Ties follow the module's rule (score desc, then image index).
    """
    scores, owner = _validate(similarity, caption_image)
    return _t2i_ranks(scores, owner)


def query_ranks(similarity: Any, caption_image: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both directions' first-match ranks, validated once: (i2t ``[n_images]``, t2i ``[n_captions]``)."""
    scores, owner = _validate(similarity, caption_image)
    return _i2t_ranks(scores, owner), _t2i_ranks(scores, owner)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Percentage (0..100) of 0-based ``ranks`` that are ``< k``."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("ranks is empty")
    return float(100.0 * np.count_nonzero(ranks < k) / ranks.size)


def retrieval_metrics(
    similarity: Any,
    caption_image: Any,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Standard RSITR recalls of a similarity matrix, in percent.

    Args:
        similarity: numpy array or torch tensor [n_images, n_captions]; higher = more similar.
        caption_image: [n_captions] integers; ``caption_image[j]`` is the image of caption j.
            Every image must own at least one caption.
        ks: recall cut-offs; the protocol's are (1, 5, 10).

    Returns:
        ``{"i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR"}`` (keys follow
        ``ks``); floats in 0..100, ``mR`` = mean of the ``2 * len(ks)`` recalls.

    Ties: stable sort by score descending, ties broken by ascending index (see module doc).

    Raises:
        ValueError: wrong shapes, NaN scores, out-of-range indices, an image without captions.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or any(k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty sequence of integers >= 1, got {ks}")
    scores, owner = _validate(similarity, caption_image)
    image_ranks = _i2t_ranks(scores, owner)  # [N]
    caption_ranks = _t2i_ranks(scores, owner)  # [C]
    result: dict[str, float] = {}
    for k in ks:
        result[f"i2t_R{k}"] = recall_at_k(image_ranks, k)
    for k in ks:
        result[f"t2i_R{k}"] = recall_at_k(caption_ranks, k)
    result["mR"] = float(np.mean(list(result.values())))
    return result
