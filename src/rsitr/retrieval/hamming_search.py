"""The coarse stage on binary codes: exact Hamming kNN (FAISS) and the PPSR shortlist of one query.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024) retrieves in two stages:

1. **Coarse.** Hamming similarity of packed binary codes, searched with FAISS
   (``faiss.IndexBinaryFlat``: exhaustive XOR + popcount, the fastest exact Hamming kNN).
   The similarity is on the cosine scale of ±1 codes: ``s = 1 - 2 * hamming / bits``.
2. **PPSR** (CSLS-style hubness correction, ``rsitr.retrieval.ppsr``)::

       S'(q, g) = 2 s(q, g) - r_q - r_g

   For a matrix of queries x gallery (evaluation) ``r_q`` and ``r_g`` are the means of
   the top-k of the row and of the column. A single online query has no other queries,
   so here (our choice, documented) ``r_g`` is the gallery item's *hubness against a
   reference query set* — the mean top-k similarity of item g to the codes of the
   training captions (text queries) or training images (image queries) — precomputed
   when the index is built (``reference_hubness``); ``r_q`` is the mean of the query's
   top-k similarities over the gallery. ``r_q`` is constant per query, so it changes the
   printed score but not the ranking.
3. **Fine.** The top-K candidates by ``S'`` (K = ``c2f.candidates``, 70 in CFITR) are
   re-scored by the variant's full scorer and ranked by it (``rsitr.retrieval.rescore``).

PPSR can promote an item from outside the plain Hamming top-K. ``ppsr_candidates`` takes a
wider Hamming shortlist and widens it until the result is provably the exact top-K of
``S'`` over the whole gallery: an item outside a shortlist whose worst similarity is
``s_cut`` has ``S' <= 2 s_cut - r_q - min(r_g)``.

Ties: FAISS returns the nearest codes in an unspecified order among equal distances; the
shortlist is re-sorted by (distance, index) and every later ranking is a stable sort by
score, descending, then by ascending index (the tie rule of ``rsitr.retrieval.metrics``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "HammingIndex",
    "hamming_similarity",
    "ppsr_candidates",
    "reference_hubness",
    "stable_topk",
]


def hamming_similarity(distances: np.ndarray, bits: int) -> np.ndarray:
    """``1 - 2 d / bits`` (the cosine of ±1 codes) as float32; ``distances`` any int array."""
    return (1.0 - 2.0 * np.asarray(distances, dtype=np.float32) / np.float32(bits)).astype(np.float32)


def stable_topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices ``int64 [Q, k]`` of the k largest entries per row, ties by ascending index."""
    k = min(int(k), scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k].astype(np.int64)


class HammingIndex:
    """Exact Hamming kNN over packed codes ``uint8 [N, bits / 8]`` (``faiss.IndexBinaryFlat``)."""

    def __init__(self, packed_codes: np.ndarray):
        import faiss

        codes = np.ascontiguousarray(packed_codes, dtype=np.uint8)  # [N, B]
        if codes.ndim != 2 or codes.shape[0] == 0:
            raise ValueError(f"packed codes must be a non-empty [N, bytes] array, got {codes.shape}")
        self.n, self.bytes = codes.shape
        self.bits = 8 * self.bytes
        self.index = faiss.IndexBinaryFlat(self.bits)
        self.index.add(codes)

    def search(self, query_packed: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices int64 [Q, k], distances int32 [Q, k])`` sorted by (distance, index)."""
        query = np.ascontiguousarray(query_packed, dtype=np.uint8)  # [Q, B]
        if query.ndim != 2 or query.shape[1] != self.bytes:
            raise ValueError(f"query codes must be [Q, {self.bytes}] uint8, got {query.shape}")
        k = min(int(k), self.n)
        distances, indices = self.index.search(query, k)  # [Q, k] each
        key = distances.astype(np.int64) * self.n + indices  # unique per (distance, index)
        order = np.argsort(key, axis=1)  # [Q, k]
        return np.take_along_axis(indices, order, 1).astype(np.int64), np.take_along_axis(distances, order, 1)


def reference_hubness(gallery_packed: np.ndarray, reference: HammingIndex | np.ndarray, k: int) -> np.ndarray:
    """``r_g``: mean of the top-k Hamming similarities of each gallery code to a reference set.

    Args:
        gallery_packed: ``uint8 [N, B]`` gallery codes.
        reference: packed reference codes ``[R, B]`` (e.g. training captions) or their index.
        k: PPSR neighbourhood (``c2f.ppsr_k``), clipped to R.

    Returns:
        ``float32 [N]``.
    """
    index = reference if isinstance(reference, HammingIndex) else HammingIndex(reference)
    _, distances = index.search(gallery_packed, k)  # [N, k]
    return hamming_similarity(distances, index.bits).mean(axis=1, dtype=np.float64).astype(np.float32)


def ppsr_candidates(
    index: HammingIndex,
    query_packed: np.ndarray,
    k: int,
    *,
    hubness: np.ndarray | None = None,
    ppsr_k: int = 10,
    shortlist: int | None = None,
) -> dict[str, np.ndarray]:
    """The top-``k`` gallery items of each query by (PPSR-adjusted) Hamming similarity.

    Without ``hubness`` the ranking is plain Hamming similarity (one FAISS search of k).
    With it, ``S' = 2 s - r_q - hubness[g]`` and the shortlist (default ``4 k``) doubles
    until the top-k of ``S'`` is exact over the whole gallery (see module doc).

    Returns:
        ``{"indices" int64 [Q, k], "coarse" float32 [Q, k] (s), "adjusted" float32 [Q, k]
        (S', = s without PPSR), "query_term" float32 [Q] (r_q, 0 without PPSR)}``,
        each row ordered by ``adjusted`` descending, ties by ascending index.
    """
    query = np.ascontiguousarray(query_packed, dtype=np.uint8)
    n_query = query.shape[0]
    k = min(int(k), index.n)
    if hubness is None:
        idx, dist = index.search(query, k)  # already (distance, index) ordered
        coarse = hamming_similarity(dist, index.bits)
        return {"indices": idx, "coarse": coarse, "adjusted": coarse.copy(), "query_term": np.zeros(n_query, np.float32)}
    hub = np.asarray(hubness, dtype=np.float32)  # [N]
    if hub.shape != (index.n,):
        raise ValueError(f"hubness must be [{index.n}], got {hub.shape}")
    hub_min = float(hub.min())
    out = {
        "indices": np.empty((n_query, k), np.int64),
        "coarse": np.empty((n_query, k), np.float32),
        "adjusted": np.empty((n_query, k), np.float32),
        "query_term": np.empty(n_query, np.float32),
    }
    for q in range(n_query):
        width = min(index.n, max(k, ppsr_k, shortlist or 4 * k))
        while True:
            idx, dist = index.search(query[q : q + 1], width)  # [1, width]
            s = hamming_similarity(dist[0], index.bits)  # [width] descending
            r_q = np.float32(s[: min(ppsr_k, index.n)].mean(dtype=np.float64))  # top-k over the gallery
            adjusted = (2 * s - r_q - hub[idx[0]]).astype(np.float32)  # [width]
            order = np.lexsort((idx[0], -adjusted))[:k]  # by S' desc, then index asc
            bound = 2 * s[-1] - r_q - hub_min  # best S' any item outside the shortlist can reach
            if width >= index.n or adjusted[order[-1]] > bound:
                break
            width = min(index.n, 2 * width)
        out["indices"][q] = idx[0][order]
        out["coarse"][q] = s[order]
        out["adjusted"][q] = adjusted[order]
        out["query_term"][q] = r_q
    return out
