"""PPSR: post-processing similarity reranking of CFITR.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024, doi:10.1109/LGRS.2024.3494543) applies a
training-free hubness correction to the coarse score matrix before selecting the top-K
candidates for fine re-scoring. It is the CSLS rule of Conneau et al. ("Word
Translation Without Parallel Data", ICLR 2018)::

    S'[i, j] = 2 * S[i, j] - r_row[i] - r_col[j]
    r_row[i] = mean of the k largest entries of row i       (k = 10 in CFITR)
    r_col[j] = mean of the k largest entries of column j

A "hub" (an item similar to everything) has large ``r`` and is pushed down. The rule is
symmetric in rows and columns, so it works for [images, captions] and [captions, images]
alike. ``k`` is clipped to the dimension it is taken over (at most ``n_cols`` for rows, at
most ``n_rows`` for columns).

See docs/methods.md (CFITR).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ppsr"]


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def _ppsr_torch(scores: Any, k: int) -> Any:
    import torch

    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {tuple(scores.shape)}")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores is empty (shape {tuple(scores.shape)})")
    if not scores.is_floating_point():
        scores = scores.to(torch.get_default_dtype())
    n_rows, n_cols = scores.shape
    row_mean = torch.topk(scores, min(k, n_cols), dim=1).values.mean(dim=1)  # [R]
    col_mean = torch.topk(scores, min(k, n_rows), dim=0).values.mean(dim=0)  # [C]
    return 2 * scores - row_mean[:, None] - col_mean[None, :]  # [R, C]


def _ppsr_numpy(scores: np.ndarray, k: int) -> np.ndarray:
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {tuple(scores.shape)}")
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"scores is empty (shape {tuple(scores.shape)})")
    if scores.dtype.kind not in "f":
        if scores.dtype.kind not in "iub":
            raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}")
        scores = scores.astype(np.float64)
    n_rows, n_cols = scores.shape
    k_row, k_col = min(k, n_cols), min(k, n_rows)
    # np.partition puts the k largest entries (in some order) in the last k slots.
    row_top = np.partition(scores, n_cols - k_row, axis=1)[:, n_cols - k_row :]  # [R, k_row]
    col_top = np.partition(scores, n_rows - k_col, axis=0)[n_rows - k_col :, :]  # [k_col, C]
    row_mean = row_top.mean(axis=1, dtype=scores.dtype)  # [R]
    col_mean = col_top.mean(axis=0, dtype=scores.dtype)  # [C]
    return 2 * scores - row_mean[:, None] - col_mean[None, :]  # [R, C]


def ppsr(scores: Any, k: int = 10) -> Any:
    """CSLS-style hubness correction ``2S - mean(top-k of row) - mean(top-k of column)``.

    Args:
        scores: [n_rows, n_cols] numpy array or torch tensor (e.g. [n_images, n_captions]).
            Integer input (e.g. Hamming similarities) is converted to floating point.
        k: neighbourhood size, >= 1; clipped to n_cols for rows and to n_rows for columns.

    Returns:
        The re-scored matrix, same shape; a torch tensor (same device, floating dtype) for
        torch input, else a numpy array.
    """
    k = _check_k(k)
    if hasattr(scores, "detach") and hasattr(scores, "is_floating_point"):  # torch.Tensor
        return _ppsr_torch(scores, k)
    return _ppsr_numpy(np.asarray(scores), k)
