"""Cross-dataset near-duplicate detection by perceptual hash (pHash).

RemoteCLIP (Liu et al. 2024) builds its training corpus from many remote-sensing sets and
removes near-duplicate images by pHash, and EBAKER follows the same practice when merging
RS image-text sets, because the public benchmarks overlap: RSITMD re-uses RSICD scenes (RSICD at
224 px, RSITMD at 256 px), so training on one and testing on the other leaks test images
into training. The rule used here (see ``docs/methods.md``, "Dataset merge and
deduplication"):

* hash every image with ``imagehash.phash`` (64-bit DCT hash, an ``8x8`` sign pattern of the
  low-frequency DCT coefficients around their median);
* two images are duplicates when the Hamming distance of their hashes is ``<= 2``;
* duplicates are merged transitively into clusters (the connected components of the pair
  graph, ``scipy.sparse.csgraph.connected_components``); keep one image per cluster.

Because pHash thresholds 64 coefficients at their median, a hash of a natural image has
exactly 32 bits set, so distances between such hashes are even: ``<= 2`` means at most one
coefficient pair swapped sides of the median. A JPEG re-encode or a 224 <-> 256 px resize
stays within that on the RSICD/UCM samples; an image with several coefficients within
~0.1 % of the median can drift by 4-6 under other resamplings (e.g. 0.9x), by design of the
threshold rather than of the search.

Finding all pairs within distance ``d`` is done without the ``O(n^2)`` all-pairs scan, by the
pigeonhole principle: split the 64 bits into ``k >= d + 1`` disjoint blocks; two hashes that
differ in at most ``d`` bits agree exactly on at least one block. Bucket the (distinct)
hashes by ``(block index, block value)`` with numpy (argsort + group boundaries), compare
only within buckets (vectorised popcount of the XOR), and keep a pair only in the first
block it agrees on, so no pair is reported twice. The default is ``k = d + 1`` (3 blocks of
22/21/21 bits at ``d = 2``); ``n_blocks=4`` gives the four 16-bit blocks of the method
notes. Both are exact. Candidate pairs are produced in bounded chunks, so a huge bucket
(e.g. thousands of images sharing a block) costs time, not memory; identical hashes are
collapsed first and expanded at the end.

Typical use::

    stats = HashStats()
    hashes = compute_hashes(paths, workers=2, cache_path="cache/phash.json", stats=stats)
    pairs = find_near_duplicate_pairs(hashes, max_distance=2)     # [P, 2] int64
    clusters = connected_clusters(len(paths), pairs)              # [N] int64
    keep = clusters == np.arange(len(paths))                      # one image per cluster
    report = dedup_report(keys, datasets, clusters, pairs, hashes)
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import operator
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Union

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from tqdm.auto import tqdm

from rsitr.data.phash_cache import PhashCache
from rsitr.errors import DataError

__all__ = [
    "DEFAULT_MAX_DISTANCE",
    "CANDIDATE_CHUNK",
    "HashStats",
    "block_layout",
    "cluster_images",
    "compute_hashes",
    "connected_clusters",
    "dedup_report",
    "find_near_duplicate_pairs",
    "hamming_distance",
    "phash_file",
]

DEFAULT_MAX_DISTANCE = 2
HASH_BITS = 64
# Upper bound on candidate pairs materialised at once (~8 int64/uint64 arrays of it: ~64 MiB).
CANDIDATE_CHUNK = 1 << 20

PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------


@dataclass
class HashStats:
    """Cache accounting of one :func:`compute_hashes` call (filled in by the call)."""

    hits: int = 0  # files whose content SHA-1 was already in the cache
    misses: int = 0  # files decoded and hashed in this call


def phash_file(path: PathLike) -> int:
    """64-bit ``imagehash.phash`` of the image at ``path`` as an unsigned int.

    The first hash bit (top-left DCT coefficient) is the most significant bit, so
    ``f"{phash_file(p):016x}" == str(imagehash.phash(Image.open(p)))``.
    Raises :class:`DataError` naming the path if it is missing or not a decodable image.
    """
    path = os.fspath(path)
    return _phash_bytes(_read_bytes(path), path)


def compute_hashes(
    paths: Sequence[PathLike],
    workers: int = 2,
    cache_path: PathLike | None = None,
    *,
    stats: HashStats | None = None,
) -> np.ndarray:
    """pHash of every image, in order, as a ``[N] uint64`` array.

    Files are read and hashed in a process pool of ``workers`` processes (``workers <= 1``
    hashes in this process). With ``cache_path`` the hashes are cached by the SHA-1 of the
    file *content* (:class:`rsitr.data.phash_cache.PhashCache`): a re-run decodes only new
    or changed files. Pass a :class:`HashStats` as ``stats`` to get the hit/miss counts.
    Raises :class:`DataError` naming the first missing or unreadable image.

    Workers are started with ``forkserver`` (``spawn`` where unavailable), which is safe in a
    process that already runs threads; as with any such pool, a plain script that calls this
    with ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    """
    str_paths = [os.fspath(p) for p in paths]
    cache = PhashCache(cache_path) if cache_path is not None else None
    known = cache.digests() if cache is not None else frozenset()
    results = _run_hash_tasks(str_paths, known, workers)  # [(sha1, phash | None)] per path

    values: list[int] = []
    hits = 0
    for digest, phash in results:
        if phash is None:  # content already in the cache
            phash = cache.get(digest)  # type: ignore[union-attr]
            hits += 1
        elif cache is not None:
            cache.put(digest, phash)
        values.append(phash)  # type: ignore[arg-type]
    if cache is not None:
        cache.save()
    if stats is not None:
        stats.hits, stats.misses = hits, len(values) - hits
    return np.array(values, dtype=np.uint64).reshape(-1)  # [N] uint64


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise DataError(f"image not found: {path}; check the dataset folder or re-download it") from exc
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


def _phash_bytes(data: bytes, path: str) -> int:
    """pHash of an encoded image; ``path`` only names it in errors."""
    import imagehash
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            bits = imagehash.phash(img).hash  # [8, 8] bool, row-major = MSB first
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, ... on bad files
        raise DataError(
            f"cannot decode image {path}: {type(exc).__name__}: {exc}; re-download or remove the file"
        ) from exc
    return int.from_bytes(np.packbits(bits.reshape(-1)).tobytes(), "big")


def _hash_one(path: str, known: frozenset[str]) -> tuple[str, int | None]:
    """(SHA-1 of the file bytes, pHash) -- pHash is None when the SHA-1 is in ``known``."""
    data = _read_bytes(path)
    digest = hashlib.sha1(data).hexdigest()
    if digest in known:
        return digest, None
    return digest, _phash_bytes(data, path)


_WORKER_KNOWN: frozenset[str] = frozenset()


def _init_worker(known: frozenset[str]) -> None:
    global _WORKER_KNOWN
    _WORKER_KNOWN = known


def _hash_task(path: str) -> tuple[str, int | None]:
    return _hash_one(path, _WORKER_KNOWN)


IN_PROCESS_BELOW = 512  # images: below this a pool costs more than it saves


def _run_hash_tasks(paths: list[str], known: frozenset[str], workers: int) -> list[tuple[str, int | None]]:
    if workers <= 1 or len(paths) < IN_PROCESS_BELOW:
        return [_hash_one(p, known) for p in tqdm(paths, desc="pHash", unit="img", disable=len(paths) < 2000)]
    workers = min(workers, len(paths))
    # forkserver/spawn: safe even when the caller already runs threads (torch, MLflow).
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    chunksize = max(1, min(256, len(paths) // (8 * workers)))
    try:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context(method),
            initializer=_init_worker,
            initargs=(known,),
        ) as pool:
            return list(pool.map(_hash_task, paths, chunksize=chunksize))
    except BrokenProcessPool:
        raise DataError(
            f"the {workers} pHash worker processes died while starting. In a plain script, put the call under "
            "`if __name__ == \"__main__\":` (worker processes re-import the script), or pass workers=1"
        ) from None


# --------------------------------------------------------------------------------------
# Hamming distance
# --------------------------------------------------------------------------------------

_POPCOUNT16 = np.array([bin(v).count("1") for v in range(1 << 16)], dtype=np.uint8)  # [65536]


def _popcount64_lut(x: np.ndarray) -> np.ndarray:
    """Bits set in each uint64 via a 16-bit lookup table (numpy < 2 fallback)."""
    x = np.ascontiguousarray(x, dtype=np.uint64).reshape(-1)  # [M] uint64
    quarters = x.view(np.uint16).reshape(-1, 4)  # [M, 4] uint16
    return _POPCOUNT16[quarters].sum(axis=1, dtype=np.uint8)  # [M] uint8


def _popcount64(x: np.ndarray) -> np.ndarray:
    """Bits set in each element of a uint64 array -> same shape, uint8."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    return _popcount64_lut(x).reshape(np.shape(x))


def hamming_distance(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Element-wise Hamming distance of uint64 hashes (broadcasting), as int64."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    return _popcount64(x).astype(np.int64)


def _as_uint64(hashes: object) -> np.ndarray:
    """1-D uint64 array of ``hashes``; signed int64 input is reinterpreted bit for bit."""
    if isinstance(hashes, np.ndarray):
        arr = hashes
        if arr.dtype.kind == "i":
            arr = arr.astype(np.int64, copy=False).view(np.uint64)
        elif arr.dtype.kind == "u" or arr.size == 0:
            arr = arr.astype(np.uint64, copy=False)
        else:
            raise TypeError(f"hashes must be integers (uint64 pHashes), got dtype {arr.dtype}")
    else:  # a sequence of Python ints; operator.index rejects floats
        try:
            arr = np.array([operator.index(v) for v in hashes], dtype=np.uint64)  # type: ignore[union-attr]
        except (TypeError, OverflowError) as exc:
            raise TypeError(f"hashes must be unsigned 64-bit integers: {exc}") from exc
    if arr.ndim != 1:
        raise ValueError(f"hashes must be 1-D, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------------------
# Near-duplicate pairs: pigeonhole block buckets
# --------------------------------------------------------------------------------------


def block_layout(max_distance: int, n_blocks: int | None = None) -> list[tuple[int, int]]:
    """``(shift, mask)`` of each of the ``n_blocks`` disjoint bit blocks of a 64-bit hash.

    ``n_blocks`` defaults to ``max_distance + 1`` (the fewest blocks that still guarantee,
    by pigeonhole, that two hashes within ``max_distance`` agree on one block). Block
    widths are ``floor(64 / k)`` or ``ceil(64 / k)`` bits, wider blocks first.
    """
    _check_max_distance(max_distance)
    k = max_distance + 1 if n_blocks is None else int(n_blocks)
    if not max_distance + 1 <= k <= HASH_BITS:
        raise ValueError(
            f"n_blocks={k} cannot guarantee exact search at max_distance={max_distance}; "
            f"use {max_distance + 1} <= n_blocks <= {HASH_BITS}"
        )
    base, extra = divmod(HASH_BITS, k)
    layout: list[tuple[int, int]] = []
    shift = HASH_BITS
    for b in range(k):
        width = base + (1 if b < extra else 0)
        shift -= width
        layout.append((shift, (1 << width) - 1))
    return layout


def _check_max_distance(max_distance: int) -> int:
    if isinstance(max_distance, bool) or not isinstance(max_distance, (int, np.integer)):
        raise TypeError(f"max_distance must be an int, got {type(max_distance).__name__}")
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be in [0, {HASH_BITS - 1}], got {max_distance}")
    return int(max_distance)


def find_near_duplicate_pairs(
    hashes: np.ndarray,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    *,
    n_blocks: int | None = None,
    chunk_size: int = CANDIDATE_CHUNK,
) -> np.ndarray:
    """Every pair ``(i, j)``, ``i < j``, with ``popcount(hashes[i] ^ hashes[j]) <= max_distance``.

    Exact and sub-quadratic (see the module docstring). Returns a ``[P, 2] int64`` array of
    unique pairs sorted by ``(i, j)``. ``n_blocks`` (>= ``max_distance + 1``) chooses the
    bucketing blocks; ``chunk_size`` bounds the candidate pairs held in memory at once.
    """
    h = _as_uint64(hashes)  # [N] uint64
    d = _check_max_distance(max_distance)
    layout = block_layout(d, n_blocks)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if h.size < 2:
        return np.empty((0, 2), dtype=np.int64)
    uniq, inverse = np.unique(h, return_inverse=True)  # [U] uint64 sorted, [N] int64
    upairs = _distinct_hash_pairs(uniq, d, layout, chunk_size)  # [Q, 2] indices into uniq
    pairs = _expand_to_items(inverse.reshape(-1), upairs, uniq.size, chunk_size)  # [P, 2]
    return _sort_pairs(pairs, h.size)


def _distinct_hash_pairs(
    uniq: np.ndarray, max_distance: int, layout: list[tuple[int, int]], chunk_size: int
) -> np.ndarray:
    """Pairs of distinct hashes within ``max_distance``, each found in its first shared block."""
    found: list[np.ndarray] = []
    for b, (shift, mask) in enumerate(layout):
        keys = (uniq >> np.uint64(shift)) & np.uint64(mask)  # [U] uint64 block values
        order = np.argsort(keys, kind="stable")  # [U] int64
        starts, sizes = _group_bounds(keys[order])  # [G] buckets with >= 2 hashes
        for left, right in _pairs_within_groups(starts, sizes, chunk_size):
            a, c = order[left], order[right]  # [C] int64 indices into uniq
            x = uniq[a] ^ uniq[c]  # [C] uint64
            keep = _popcount64(x) <= max_distance  # [C] bool
            for earlier_shift, earlier_mask in layout[:b]:  # drop pairs seen in an earlier block
                keep &= ((x >> np.uint64(earlier_shift)) & np.uint64(earlier_mask)) != 0
            a, c = a[keep], c[keep]
            found.append(np.stack([np.minimum(a, c), np.maximum(a, c)], axis=1))  # [C', 2]
    return _concat_pairs(found)


def _group_bounds(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and size of each run of equal values with >= 2 members (``[G]`` int64 each)."""
    m = sorted_keys.size
    if m < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    is_start = np.empty(m, dtype=bool)  # [M]
    is_start[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)  # [G0] int64
    sizes = np.diff(np.append(starts, m))  # [G0] int64
    multi = sizes >= 2
    return starts[multi], sizes[multi]


def _exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(counts.size, dtype=np.int64)  # [K]
    np.cumsum(counts[:-1], out=out[1:])
    return out


def _ragged_offsets(counts: np.ndarray) -> np.ndarray:
    """``concat(arange(c) for c in counts)`` without a Python loop -> ``[sum(counts)]`` int64."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(_exclusive_cumsum(counts), counts)


def _chunk_slices(counts: np.ndarray, chunk_size: int) -> Iterator[slice]:
    """Consecutive slices of ``counts`` whose sums stay <= ``chunk_size`` (or one element)."""
    cum = np.cumsum(counts)  # [K] int64
    lo, done = 0, 0
    while lo < counts.size:
        hi = max(int(np.searchsorted(cum, done + chunk_size, side="right")), lo + 1)
        yield slice(lo, hi)
        done, lo = int(cum[hi - 1]), hi


def _pairs_within_groups(
    starts: np.ndarray, sizes: np.ndarray, chunk_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """All position pairs ``(p, q)``, ``p < q``, inside each group, in chunks of <= chunk_size.

    A group is the positions ``starts[g] .. starts[g] + sizes[g] - 1``. A chunk is a run of
    "rows" (a position with all its later partners in the group), so even a single huge group
    is split across chunks.
    """
    if starts.size == 0:
        return
    pos = np.repeat(starts, sizes) + _ragged_offsets(sizes)  # [T] every grouped position
    partners = np.repeat(starts + sizes, sizes) - pos - 1  # [T] later positions in the group
    has = partners > 0
    pos, partners = pos[has], partners[has]
    for sl in _chunk_slices(partners, chunk_size):
        counts = partners[sl]
        left = np.repeat(pos[sl], counts)  # [C] int64
        right = left + 1 + _ragged_offsets(counts)  # [C] int64
        yield left, right


def _expand_to_items(inverse: np.ndarray, upairs: np.ndarray, n_unique: int, chunk_size: int) -> np.ndarray:
    """Turn pairs of distinct hash values into pairs of item indices.

    Items with identical hashes are all pairwise duplicates (distance 0); a pair of
    distinct values ``(u, v)`` yields every item of ``u`` times every item of ``v``.
    """
    n = inverse.size
    counts = np.bincount(inverse, minlength=n_unique)  # [U] items per distinct hash
    if counts.max(initial=0) <= 1:  # all hashes distinct: value index -> item index
        item_of = np.empty(n_unique, dtype=np.int64)
        item_of[inverse] = np.arange(n, dtype=np.int64)
        items = item_of[upairs]  # [Q, 2] int64, not yet ordered
        return np.sort(items, axis=1)
    members = np.argsort(inverse, kind="stable")  # [N] items grouped by value, ascending
    first = _exclusive_cumsum(counts)  # [U] start of each value's run in `members`
    parts: list[np.ndarray] = []
    multi = counts >= 2
    for left, right in _pairs_within_groups(first[multi], counts[multi], chunk_size):
        parts.append(np.stack([members[left], members[right]], axis=1))  # already i < j
    if upairs.size:
        cu, cv = counts[upairs[:, 0]], counts[upairs[:, 1]]  # [Q] int64
        for sl in _chunk_slices(cu * cv, chunk_size):
            k = np.repeat(np.arange(sl.start, sl.stop), (cu * cv)[sl])  # [C] value-pair index
            t = _ragged_offsets((cu * cv)[sl])  # [C] index in the cu x cv grid
            a = members[first[upairs[k, 0]] + t // cv[k]]  # [C] int64 items of u
            c = members[first[upairs[k, 1]] + t % cv[k]]  # [C] int64 items of v
            parts.append(np.stack([np.minimum(a, c), np.maximum(a, c)], axis=1))
    return _concat_pairs(parts)


def _concat_pairs(parts: list[np.ndarray]) -> np.ndarray:
    if not parts:
        return np.empty((0, 2), dtype=np.int64)
    return np.concatenate(parts, axis=0).astype(np.int64, copy=False)  # [P, 2]


def _sort_pairs(pairs: np.ndarray, n: int) -> np.ndarray:
    """Sort ``[P, 2]`` pairs by (i, j) via the scalar key ``i * n + j`` (fits int64 for n < 2^31)."""
    key = pairs[:, 0] * np.int64(n) + pairs[:, 1]  # [P] int64
    return np.ascontiguousarray(pairs[np.argsort(key, kind="stable")])


# --------------------------------------------------------------------------------------
# Clusters
# --------------------------------------------------------------------------------------


def connected_clusters(n: int, pairs: np.ndarray) -> np.ndarray:
    """Cluster id of each of ``n`` items given duplicate ``pairs`` ``[P, 2]``.

    Returns ``[n] int64``; the id is the smallest item index in the cluster, so items with
    ``clusters[i] == i`` are the ones to keep.
    """
    edges = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)  # [P, 2]
    if edges.size and (edges.min() < 0 or edges.max() >= n):
        raise ValueError(f"pair indices must be in [0, {n}), got range [{edges.min()}, {edges.max()}]")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))  # [n, n]
    _, component = connected_components(graph, directed=False)  # [n] component number
    _, first = np.unique(component, return_index=True)  # [C] smallest member of each component
    return first[component].astype(np.int64)  # [n]


def cluster_images(
    paths: Sequence[PathLike],
    max_distance: int = DEFAULT_MAX_DISTANCE,
    workers: int = 2,
    cache_path: PathLike | None = None,
) -> list[int]:
    """Near-duplicate cluster id of every image (the smallest index in its cluster).

    Images whose pHashes are within ``max_distance`` bits are linked, transitively.
    """
    hashes = compute_hashes(paths, workers=workers, cache_path=cache_path)  # [N] uint64
    pairs = find_near_duplicate_pairs(hashes, max_distance)  # [P, 2] int64
    return connected_clusters(hashes.size, pairs).tolist()


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PairView:
    """The arrays every report step reads: per image ``[N]`` and per pair ``[P]``."""

    names: list[str]  # sorted dataset names
    cl: np.ndarray  # [N] int64 cluster id
    ds: np.ndarray  # [N] int64 dataset index into names
    pr: np.ndarray  # [P, 2] int64 pair indices
    di: np.ndarray  # [P] dataset of each pair's first side
    dj: np.ndarray  # [P] dataset of each pair's second side
    dist: np.ndarray  # [P] int64 Hamming distance


def _pair_view(datasets: Sequence[str], clusters: Sequence[int] | np.ndarray, pairs: np.ndarray,
               hashes: np.ndarray, n: int) -> _PairView:
    """Validate the inputs (one entry per image) and index datasets and pairs."""
    cl = np.asarray(clusters, dtype=np.int64).reshape(-1)  # [N]
    pr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)  # [P, 2]
    hs = _as_uint64(hashes)  # [N] uint64
    if not len(datasets) == cl.size == hs.size == n:
        raise ValueError(
            f"keys, datasets, clusters and hashes must have one entry per image; got lengths "
            f"{n}, {len(datasets)}, {cl.size}, {hs.size}"
        )
    names = sorted(set(map(str, datasets)))
    index_of = {name: k for k, name in enumerate(names)}
    ds = np.array([index_of[str(x)] for x in datasets], dtype=np.int64).reshape(-1)  # [N]
    dist = hamming_distance(hs[pr[:, 0]], hs[pr[:, 1]])  # [P] int64
    return _PairView(names, cl, ds, pr, ds[pr[:, 0]], ds[pr[:, 1]], dist)


def _report_totals(view: _PairView, n: int) -> dict:
    """Image, pair and cluster counts and the distance histogram."""
    sizes = np.bincount(view.cl, minlength=n) if n else np.zeros(0, dtype=np.int64)  # [N] by cluster id
    n_clusters = int(np.unique(view.cl).size)
    return {
        "n_images": n,
        "n_pairs": int(view.pr.shape[0]),
        "n_clusters": n_clusters,
        "n_duplicate_clusters": int((sizes >= 2).sum()),
        "n_redundant_images": int(n - n_clusters),
        "distance_histogram": {str(v): int(c) for v, c in zip(*np.unique(view.dist, return_counts=True))},
    }


def _report_datasets(view: _PairView, clusters_of: list[np.ndarray]) -> dict:
    """Per dataset: images, clusters, redundant images and duplicate pairs inside it."""
    out = {}
    for k, name in enumerate(view.names):
        n_k = int((view.ds == k).sum())
        out[name] = {
            "images": n_k,
            "clusters": int(clusters_of[k].size),
            "redundant_images": n_k - int(clusters_of[k].size),
            "duplicate_pairs": int(((view.di == k) & (view.dj == k)).sum()),
        }
    return out


def _report_overlaps(view: _PairView, clusters_of: list[np.ndarray]) -> list[dict]:
    """Per dataset pair: pairs across them, shared clusters and the images on each side in them."""
    names, out = view.names, []
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            shared = np.intersect1d(clusters_of[a], clusters_of[b])  # [S] cluster ids
            in_shared = np.isin(view.cl, shared)  # [N] bool
            across = ((view.di == a) & (view.dj == b)) | ((view.di == b) & (view.dj == a))  # [P] bool
            out.append(
                {
                    "datasets": [names[a], names[b]],
                    "pairs": int(across.sum()),
                    "shared_clusters": int(shared.size),
                    "images": {  # images of each side that have a near-duplicate in the other
                        names[a]: int((in_shared & (view.ds == a)).sum()),
                        names[b]: int((in_shared & (view.ds == b)).sum()),
                    },
                }
            )
    return out


def _report_examples(view: _PairView, keys: Sequence[str], max_examples: int) -> list[dict]:
    """Up to ``max_examples`` pairs, cross-dataset first, then by distance and index."""
    pr, ds = view.pr, view.ds
    order = np.lexsort((pr[:, 1], pr[:, 0], view.dist, view.di == view.dj))[:max_examples]
    return [
        {
            "a": str(keys[int(pr[p, 0])]),
            "b": str(keys[int(pr[p, 1])]),
            "dataset_a": view.names[ds[pr[p, 0]]],
            "dataset_b": view.names[ds[pr[p, 1]]],
            "distance": int(view.dist[p]),
        }
        for p in order.tolist()
    ]


def dedup_report(
    keys: Sequence[str],
    datasets: Sequence[str],
    clusters: Sequence[int] | np.ndarray,
    pairs: np.ndarray,
    hashes: np.ndarray,
    *,
    max_examples: int = 10,
) -> dict:
    """JSON-able summary of a dedup run over images from several datasets.

    ``keys[i]`` names image ``i`` (e.g. ``"rsicd/00001.jpg"``), ``datasets[i]`` its dataset.
    Reports, per dataset, duplicate pairs and redundant images inside it; per dataset pair,
    near-duplicate pairs across them and the clusters they share (what leaks if one is
    trained on and the other tested on); and up to ``max_examples`` example pairs with their
    distance, cross-dataset pairs first.
    """
    n = len(keys)
    view = _pair_view(datasets, clusters, pairs, hashes, n)
    clusters_of = [np.unique(view.cl[view.ds == k]) for k in range(len(view.names))]  # per dataset, sorted ids
    return {
        **_report_totals(view, n),
        "datasets": _report_datasets(view, clusters_of),
        "overlaps": _report_overlaps(view, clusters_of),
        "examples": _report_examples(view, keys, max_examples),
    }


CLUSTER_COLUMNS = ("image_id", "dataset", "image_path", "phash", "cluster", "representative")


def cluster_table(images: pd.DataFrame, hashes: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per image (``CLUSTER_COLUMNS``) from images sorted by image_id, their hashes and cluster labels."""
    image_ids = images["image_id"].to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "image_id": image_ids,
            "dataset": images["dataset"].to_numpy(dtype=object),
            "image_path": images["image_path"].to_numpy(dtype=object),
            "phash": [f"{int(h):016x}" for h in hashes.tolist()],
            "cluster": labels.astype("int64"),
            "representative": image_ids[labels],
        },
        columns=list(CLUSTER_COLUMNS),
    )
