"""Coarse-stage indexes over L2-normalised float32 embeddings, behind one small interface.

The coarse stage of coarse-to-fine retrieval (CFITR: Zhou, Wu, Deng, IEEE GRSL 2024) only
has to return a shortlist that contains the true nearest neighbours. This module puts the
candidate coarse stages behind one interface so they can be compared and swapped:

* ``exact``: ``faiss.IndexFlatIP``, exhaustive inner product (the reference).
* ``hnsw``:  ``faiss.IndexHNSWFlat`` with ``METRIC_INNER_PRODUCT``, the hierarchical
  navigable small-world graph of Malkov & Yashunin ("Efficient and robust approximate
  nearest neighbor search using Hierarchical Navigable Small World graphs", IEEE TPAMI
  2018/2020). Parameters ``m`` (graph degree), ``ef_construction`` and ``ef_search``.
* ``ivf``:   ``faiss.IndexIVFFlat`` (inner product), a k-means inverted file trained on a
  sample of the gallery; ``nlist`` lists, ``nprobe`` lists visited per query.
* ``hash``:  rsitr's own CFITR coarse stage: packed sign codes searched exhaustively in
  Hamming space (``rsitr.retrieval.hamming_search.HammingIndex`` = ``faiss.IndexBinaryFlat``),
  optionally followed by an exact inner-product re-score of ``candidates`` shortlisted
  items (the "fine" half of c2f with a dense scorer). Codes come from an encoder
  ``float32 [N, D] -> uint8 [N, bits / 8]``; the default is SimHash (sign of a fixed
  random Gaussian projection, seeded). In the product the trained hash heads are the
  encoder (``HashHeads.pack("image", ...)`` for the gallery, ``"text"`` for queries).

All are built on FAISS (Johnson, Douze, Jégou, "Billion-scale similarity search with
GPUs", IEEE Trans. Big Data 2019).

Interface (every index)::

    index = make_coarse_index("hnsw", m=32, ef_search=64, threads=2).build(embeddings)  # [N, D]
    scores, ids = index.search(queries, k)   # float32 [Q, k], int64 [Q, k]
    index.save(directory); same = load_coarse_index(directory)
    index.memory_bytes                       # bytes held by the index structures

Scores are inner products (= cosine for unit vectors); ``hash`` without re-scoring returns
the Hamming similarity ``1 - 2 d / bits``. Rows are ordered by (score desc, id asc), the
tie rule of ``rsitr.retrieval.hamming_search.stable_topk``; ``exact`` widens its FAISS search
until ties at the k-th place are complete, so it equals a stable numpy top-k exactly.
Slots an approximate index cannot fill (fewer than k items reached) hold id ``-1`` and
score ``-inf``, last in the row. ``threads`` (when given) is passed to
``faiss.omp_set_num_threads`` before building and searching; it is process-wide.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rsitr.errors import ConfigError, unknown_name
from rsitr.retrieval.binary_codes import pack_codes
from rsitr.retrieval.hamming_search import HammingIndex, hamming_similarity

__all__ = [
    "COARSE_INDEXES",
    "CoarseIndex",
    "ExactIndex",
    "HNSWIndex",
    "HashIndex",
    "IVFIndex",
    "load_coarse_index",
    "make_coarse_index",
    "sort_results",
]

META_FILE = "coarse_index.json"
FAISS_FILE = "index.faiss"
_MISSING = np.iinfo(np.int64).max  # sort key of an unfilled (-1) slot


def _faiss():
    import faiss

    return faiss


def _as_matrix(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    array = np.ascontiguousarray(x, dtype=np.float32)  # no copy for a contiguous float32 input
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty float32 [rows, dim] array, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{name} has dimension {array.shape[1]}, the index {dim}")
    return array


def sort_results(scores: np.ndarray, ids: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Re-sort each row by (score desc, id asc), ``-1`` ids last; keep the first ``k``.

    Returns ``(float32 [Q, k], int64 [Q, k])``; unfilled slots get score ``-inf``.
    """
    ids = np.asarray(ids, dtype=np.int64)  # [Q, W]
    scores = np.where(ids < 0, -np.inf, np.asarray(scores, dtype=np.float32)).astype(np.float32)
    key_ids = np.where(ids < 0, _MISSING, ids)
    order = np.lexsort((key_ids, -scores), axis=-1)[:, :k]  # [Q, k] last key = primary
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


class CoarseIndex:
    """Base class: one FAISS float index, persisted as ``index.faiss`` + a JSON manifest."""

    kind = "base"

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self.index: Any = None
        self.dim: int | None = None

    # -- subclass hooks ------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """Constructor keywords that recreate this index (saved in the manifest)."""
        return {}

    def _new_index(self, embeddings: np.ndarray) -> Any:
        raise NotImplementedError

    def _before_search(self) -> None:
        """Apply search-time parameters (efSearch, nprobe) to ``self.index``."""

    # -- interface -----------------------------------------------------------------------
    def _set_threads(self) -> None:
        if self.threads is not None:
            _faiss().omp_set_num_threads(int(self.threads))

    @property
    def ntotal(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def _check_built(self) -> None:
        if self.index is None:
            raise RuntimeError(f"{self.kind} index is empty: call build(embeddings) or load(path) first")

    def build(self, embeddings: np.ndarray) -> "CoarseIndex":
        """Index ``float32 [N, D]`` embeddings (row i gets id i); returns ``self``."""
        x = _as_matrix(embeddings, "embeddings")  # [N, D]
        self._set_threads()
        self.dim = int(x.shape[1])
        self.index = self._new_index(x)
        self.index.add(x)
        return self

    def _raw_search(self, queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS search of ``width``: ``(float32 [Q, width], int64 [Q, width])``."""
        self._before_search()
        return self.index.search(queries, width)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k``: ``(scores float32 [Q, k], ids int64 [Q, k])``, rows by (score desc, id asc)."""
        self._check_built()
        q = _as_matrix(queries, "queries", self.dim)  # [Q, D]
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(int(k), self.ntotal)
        self._set_threads()
        scores, ids = self._raw_search(q, k)  # [Q, k]
        return sort_results(scores, ids, k)

    @property
    def memory_bytes(self) -> int:
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write ``<path>/index.faiss`` and ``<path>/coarse_index.json``; returns the folder."""
        self._check_built()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        _faiss().write_index(self.index, str(out / FAISS_FILE))
        self._write_meta(out)
        return out

    def _write_meta(self, out: Path) -> None:
        meta = {"kind": self.kind, "params": self.params(), "dim": self.dim, "ntotal": self.ntotal}
        (out / META_FILE).write_text(json.dumps(meta, indent=2))

    def _load_arrays(self, root: Path) -> None:
        self.index = _faiss().read_index(str(root / FAISS_FILE))

    @classmethod
    def load(cls, path: str | Path) -> "CoarseIndex":
        """Inverse of :meth:`save` (``threads`` is not persisted: set ``.threads`` after)."""
        root = Path(path)
        meta = json.loads((root / META_FILE).read_text())
        if meta.get("kind") != cls.kind:
            raise ValueError(f"{str(root)!r} holds a {meta.get('kind')!r} index, not {cls.kind!r}")
        self = cls(**meta["params"])
        self.dim = int(meta["dim"])
        self._load_arrays(root)
        return self


class ExactIndex(CoarseIndex):
    """Exhaustive inner product (``faiss.IndexFlatIP``); ties resolved exactly by id."""

    kind = "exact"

    def _new_index(self, embeddings: np.ndarray) -> Any:
        return _faiss().IndexFlatIP(embeddings.shape[1])

    def _raw_search(self, queries: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Search k + 1, and widen the rows whose k-th score ties the last returned one.

        FAISS keeps an unspecified subset of the items tied at the k-th place; once the
        last returned score is strictly below the k-th, every tied item is in the list.
        """
        k, n = width, self.ntotal
        wide = min(n, k + 1)
        s, i = sort_results(*self.index.search(queries, wide))  # [Q, wide]
        out_s, out_i = s[:, :k].copy(), i[:, :k].copy()  # [Q, k]
        rows = np.arange(queries.shape[0])
        while wide < n:
            rows = rows[s[:, k - 1] <= s[:, -1]]  # a tie at the k-th place may be cut
            if rows.size == 0:
                break
            wide = min(n, 2 * wide)
            s, i = sort_results(*self.index.search(queries[rows], wide))  # [R, wide]
            out_s[rows], out_i[rows] = s[:, :k], i[:, :k]
        return out_s, out_i

    @property
    def memory_bytes(self) -> int:
        return self.ntotal * int(self.dim or 0) * 4


class HNSWIndex(CoarseIndex):
    """``faiss.IndexHNSWFlat`` (inner product): ``m`` links per node, ``ef_*`` beam widths."""

    kind = "hnsw"

    def __init__(self, m: int = 32, ef_construction: int = 40, ef_search: int = 64, threads: int | None = None):
        super().__init__(threads)
        self.m, self.ef_construction, self.ef_search = int(m), int(ef_construction), int(ef_search)

    def params(self) -> dict[str, Any]:
        return {"m": self.m, "ef_construction": self.ef_construction, "ef_search": self.ef_search}

    def _new_index(self, embeddings: np.ndarray) -> Any:
        faiss = _faiss()
        index = faiss.IndexHNSWFlat(embeddings.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        return index

    def _before_search(self) -> None:
        self.index.hnsw.efSearch = self.ef_search  # FAISS searches with max(efSearch, k)

    @property
    def memory_bytes(self) -> int:
        if self.index is None:
            return 0
        hnsw = self.index.hnsw
        graph = 4 * hnsw.neighbors.size() + 4 * hnsw.levels.size() + 8 * hnsw.offsets.size()
        return self.ntotal * int(self.dim or 0) * 4 + int(graph)


class IVFIndex(CoarseIndex):
    """``faiss.IndexIVFFlat`` (inner product), k-means trained on ``train_size`` sampled rows.

    ``nlist`` defaults to ``4 sqrt(N)`` (rounded), the usual FAISS rule of thumb.
    """

    kind = "ivf"

    def __init__(
        self, nlist: int | None = None, nprobe: int = 16, train_size: int | None = None,
        seed: int = 0, threads: int | None = None,
    ):
        super().__init__(threads)
        self.nlist = None if nlist is None else int(nlist)
        self.nprobe, self.train_size, self.seed = int(nprobe), train_size, int(seed)

    def params(self) -> dict[str, Any]:
        return {"nlist": self.nlist, "nprobe": self.nprobe, "train_size": self.train_size, "seed": self.seed}

    def _new_index(self, embeddings: np.ndarray) -> Any:
        faiss = _faiss()
        n, dim = embeddings.shape
        self.nlist = self.nlist or max(1, min(n, int(round(4 * math.sqrt(n)))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        size = min(n, self.train_size or max(40 * self.nlist, 10_000))
        rng = np.random.default_rng(self.seed)
        sample = embeddings[np.sort(rng.choice(n, size=size, replace=False))]  # [S, D]
        index.cp.seed = self.seed
        index.train(sample)
        return index

    def _before_search(self) -> None:
        self.index.nprobe = self.nprobe

    @property
    def memory_bytes(self) -> int:
        if self.index is None:
            return 0
        dim = int(self.dim or 0)
        return self.ntotal * (4 * dim + 8) + int(self.nlist or 0) * 4 * dim  # codes + ids + centroids


def simhash_projection(dim: int, bits: int, seed: int = 0) -> np.ndarray:
    """SimHash: a fixed Gaussian projection ``float32 [dim, bits]`` (codes = sign of x @ P)."""
    return np.random.default_rng(seed).standard_normal((dim, bits)).astype(np.float32)


class HashIndex:
    """CFITR's coarse stage: Hamming kNN of packed sign codes, then an optional dense re-score.

    ``candidates=None``: the result is the Hamming top-k, scored ``1 - 2 d / bits``.
    ``candidates=K``: the Hamming top-max(K, k) is re-scored by the exact inner product
    with the stored embeddings (kept by reference when float32, not copied) and the top-k
    of that is returned: coarse-to-fine with a dense fine scorer.

    ``encoder`` / ``query_encoder`` map ``float32 [N, D] -> uint8 [N, bits / 8]``
    (``rsitr.retrieval.binary_codes.pack_codes`` of real codes); the default is SimHash
    with ``seed``. Trained hash heads (``HashHeads.pack``) replace it in the product; an
    index with custom encoders saves its codes but must get the encoders again on load.
    """

    kind = "hash"
    _RESCORE_BYTES = 1 << 26  # bound on one [q, K, D] float32 gather of the re-score
    HEAP_MAX_K = 1000  # FAISS heap selection below this shortlist size, counting (knn_mc) above

    def __init__(
        self, bits: int = 128, candidates: int | None = None, seed: int = 0, threads: int | None = None,
        encoder: Callable[[np.ndarray], np.ndarray] | None = None,
        query_encoder: Callable[[np.ndarray], np.ndarray] | None = None,
    ):
        self.bits, self.seed, self.threads = int(bits), int(seed), threads
        self.candidates = None if candidates is None else int(candidates)
        self.encoder, self.query_encoder = encoder, query_encoder
        self.projection: np.ndarray | None = None  # [D, bits] when SimHash is used
        self.hamming: Any = None  # rsitr.retrieval.hamming_search.HammingIndex
        self.embeddings: np.ndarray | None = None  # [N, D] for the re-score
        self.dim: int | None = None

    def params(self) -> dict[str, Any]:
        return {"bits": self.bits, "candidates": self.candidates, "seed": self.seed}

    def _encode(self, x: np.ndarray, query: bool) -> np.ndarray:
        fn = (self.query_encoder or self.encoder) if query else self.encoder
        if fn is not None:
            return np.ascontiguousarray(fn(x), dtype=np.uint8)
        if self.projection is None:
            self.projection = simhash_projection(x.shape[1], self.bits, self.seed)
        chunk = 65_536
        return np.concatenate([pack_codes(x[lo : lo + chunk] @ self.projection) for lo in range(0, len(x), chunk)])

    def build(self, embeddings: np.ndarray) -> "HashIndex":
        """Encode and index ``float32 [N, D]``; keeps the embeddings when re-scoring."""
        x = _as_matrix(embeddings, "embeddings")  # [N, D]
        self.dim = int(x.shape[1])
        return self.build_from_codes(self._encode(x, query=False), x if self.candidates else None)

    def build_from_codes(self, codes: np.ndarray, embeddings: np.ndarray | None = None) -> "HashIndex":
        """Index precomputed packed codes ``uint8 [N, bits / 8]`` (e.g. ``GalleryIndex.codes``)."""

        if self.threads is not None:
            _faiss().omp_set_num_threads(int(self.threads))
        self.hamming = HammingIndex(codes)
        if self.hamming.bits != self.bits:
            raise ValueError(f"codes have {self.hamming.bits} bits, the index expects {self.bits}")
        if embeddings is not None:
            self.embeddings = embeddings if embeddings.dtype == np.float32 else np.asarray(embeddings)
            self.dim = int(embeddings.shape[1])
        return self

    @property
    def ntotal(self) -> int:
        return 0 if self.hamming is None else int(self.hamming.n)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k``: ``(scores float32 [Q, k], ids int64 [Q, k])``, rows by (score desc, id asc)."""

        if self.hamming is None:
            raise RuntimeError("hash index is empty: call build(embeddings) or load(path) first")
        q = _as_matrix(queries, "queries", self.dim)  # [Q, D]
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        k = min(int(k), self.ntotal)
        if self.threads is not None:
            _faiss().omp_set_num_threads(int(self.threads))
        if not self.candidates:
            ids, dist = self.hamming.search(self._encode(q, query=True), k)  # [Q, k], (distance, id) order
            return hamming_similarity(dist, self.bits), ids
        if self.embeddings is None:
            raise RuntimeError("re-scoring needs the embeddings: build(embeddings) or build_from_codes(codes, embeddings)")
        width = min(self.ntotal, max(self.candidates, k))
        self.hamming.index.use_heap = width < self.HEAP_MAX_K  # counting selection: ~5x faster at K = 16,000
        ids, _ = self.hamming.search(self._encode(q, query=True), width)  # [Q, K]
        return sort_results(self._rescore(q, ids), ids, k)

    def _rescore(self, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Inner products ``float32 [Q, K]`` of each query with its candidates, in query blocks."""
        n_q, width = ids.shape
        step = max(1, self._RESCORE_BYTES // (4 * width * q.shape[1]))
        out = np.empty((n_q, width), np.float32)
        for lo in range(0, n_q, step):
            rows = np.asarray(self.embeddings[ids[lo : lo + step].reshape(-1)], np.float32)  # [q * K, D]
            rows = rows.reshape(-1, width, q.shape[1])  # [q, K, D]
            out[lo : lo + step] = np.matmul(rows, q[lo : lo + step, :, None])[:, :, 0]  # BLAS gemv per query
        return out

    @property
    def memory_bytes(self) -> int:
        codes = self.ntotal * (self.bits + 7) // 8
        dense = 0 if self.embeddings is None or not self.candidates else int(self.embeddings.nbytes)
        return codes + dense + (0 if self.projection is None else int(self.projection.nbytes))

    def save(self, path: str | Path) -> Path:
        """Write the codes (``index.faiss``, binary), projection / embeddings and the manifest."""
        if self.hamming is None:
            raise RuntimeError("hash index is empty: nothing to save")
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        _faiss().write_index_binary(self.hamming.index, str(out / FAISS_FILE))
        if self.projection is not None:
            np.save(out / "projection.npy", self.projection)
        if self.embeddings is not None and self.candidates:
            np.save(out / "embeddings.npy", np.asarray(self.embeddings))
        meta = {"kind": self.kind, "params": self.params(), "dim": self.dim, "ntotal": self.ntotal,
                "custom_encoder": self.encoder is not None}
        (out / META_FILE).write_text(json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, path: str | Path, **encoders: Any) -> "HashIndex":
        """Inverse of :meth:`save`; pass ``encoder=`` / ``query_encoder=`` if it had custom ones."""

        root = Path(path)
        meta = json.loads((root / META_FILE).read_text())
        if meta.get("custom_encoder") and "encoder" not in encoders:
            raise ValueError(f"{str(root)!r} was built with a custom encoder: pass encoder= to load it")
        self = cls(**meta["params"], **encoders)
        binary = _faiss().read_index_binary(str(root / FAISS_FILE))
        codes = _faiss().vector_to_array(binary.xb).reshape(binary.ntotal, binary.code_size)  # [N, B]
        self.hamming = HammingIndex(codes)
        self.dim = meta["dim"]
        if (root / "projection.npy").is_file():
            self.projection = np.load(root / "projection.npy")
        if (root / "embeddings.npy").is_file():
            self.embeddings = np.load(root / "embeddings.npy", mmap_mode="r")
        return self


COARSE_INDEXES: dict[str, type] = {"exact": ExactIndex, "hnsw": HNSWIndex, "ivf": IVFIndex, "hash": HashIndex}


def _lookup(name: str) -> type:
    if name not in COARSE_INDEXES:
        raise ConfigError(unknown_name("coarse index", name, COARSE_INDEXES))
    return COARSE_INDEXES[name]


def make_coarse_index(name: str, **params: Any) -> Any:
    """An empty coarse index of kind ``name`` (``ConfigError`` listing the valid names if unknown)."""
    return _lookup(name)(**params)


def load_coarse_index(path: str | Path, **kwargs: Any) -> Any:
    """Load any saved coarse index; its kind is read from ``<path>/coarse_index.json``."""
    meta = json.loads((Path(path) / META_FILE).read_text())
    return _lookup(str(meta.get("kind"))).load(path, **kwargs)
