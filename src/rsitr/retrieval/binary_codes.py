"""Packed binary hash codes and Hamming search for the coarse stage of CFITR.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024) encodes images and captions into 128-bit
codes ``sign(tanh(h))``; gallery codes are precomputed and a query is compared to them by
Hamming distance. For ±1 codes of ``n_bits`` bits the inner product and the distance are
tied by ``<a, b> = n_bits - 2 * hamming(a, b)``.

Bit convention
--------------
* Binarisation: an entry ``x >= 0`` becomes bit 1, ``x < 0`` bit 0 (so ``+1 -> 1``,
  ``-1 -> 0`` and an exact ``0`` counts as positive). Boolean arrays are taken as bits as
  they are. Unsigned-integer arrays are refused: a {0, 1} array would all read as ``>= 0``;
  pass it as ``bool`` instead.
* Packing: ``numpy.packbits(..., bitorder="big")`` along the bit axis, so bit ``b`` of a
  code lives in byte ``b // 8`` at position ``7 - b % 8`` (the first bit is the most
  significant bit of the first byte). A code of ``n_bits`` bits takes ``ceil(n_bits / 8)``
  bytes; when ``n_bits`` is not a multiple of 8 the last byte is padded with zero bits,
  which are equal in every code and so never change a Hamming distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["hamming_distance", "hamming_topk", "pack_codes", "unpack_codes"]

# Upper bound (bytes) on one [q, n] XOR temporary of a block.
_BLOCK_BYTES = 1 << 24

_HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0
_POPCOUNT_TABLE = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)  # [256]


def _as_numpy(array: Any) -> np.ndarray:
    if hasattr(array, "detach") and hasattr(array, "cpu"):  # torch.Tensor
        tensor = array.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":  # numpy has no bfloat16; exact upcast
            tensor = tensor.float()
        return tensor.numpy()
    return np.asarray(array)


def pack_codes(codes: Any) -> np.ndarray:
    """Binarise real / ±1 / bool codes [N, n_bits] and pack them to uint8 [N, ceil(n_bits/8)].

    ``x >= 0`` -> bit 1, ``x < 0`` -> bit 0; bool input is used as bits. Big-endian bit
    order within each byte (see module doc). Accepts numpy arrays and torch tensors.
    """
    array = _as_numpy(codes)
    if array.ndim != 2:
        raise ValueError(f"codes must be 2-D [N, n_bits], got shape {tuple(array.shape)}")
    if array.shape[1] == 0:
        raise ValueError("codes have 0 bits")
    if array.dtype == np.bool_:
        bits = array  # [N, n_bits]
    elif array.dtype.kind == "u":
        raise ValueError(
            f"codes of unsigned dtype {array.dtype} are ambiguous (all entries are >= 0); "
            "pass 0/1 bits as a bool array or ±1 / real values as a signed array"
        )
    elif array.dtype.kind in "if":
        if array.dtype.kind == "f" and np.isnan(array).any():
            raise ValueError("codes contain NaN; cannot binarise")
        bits = array >= 0  # [N, n_bits]
    else:
        raise ValueError(f"codes must be numeric or bool, got dtype {array.dtype}")
    return np.packbits(bits, axis=1, bitorder="big")  # [N, ceil(n_bits / 8)]


def unpack_codes(packed: Any, n_bits: int | None = None, signed: bool = True) -> np.ndarray:
    """Inverse of :func:`pack_codes`.

    Args:
        packed: uint8 [N, B].
        n_bits: number of bits to keep (default ``8 * B``); drops the padding bits.
        signed: True -> int8 codes in {-1, +1}; False -> uint8 bits in {0, 1}.

    Returns:
        [N, n_bits] array.
    """
    array = _check_packed(packed, "packed")
    n_bytes = array.shape[1]
    if n_bits is None:
        n_bits = 8 * n_bytes
    if not 8 * (n_bytes - 1) < n_bits <= 8 * n_bytes:
        raise ValueError(f"n_bits={n_bits} does not fit {n_bytes} packed bytes per code")
    bits = np.unpackbits(array, axis=1, count=n_bits, bitorder="big")  # [N, n_bits] {0,1}
    if not signed:
        return bits
    return bits.astype(np.int8) * 2 - 1  # [N, n_bits] {-1,+1}


def _check_packed(packed: Any, name: str) -> np.ndarray:
    array = _as_numpy(packed)
    if array.dtype != np.uint8:
        raise ValueError(f"{name} must be packed uint8 codes (see pack_codes), got {array.dtype}")
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{name} must be 2-D [N, n_bytes] with n_bytes >= 1, got {array.shape}")
    return np.ascontiguousarray(array)


def _words(packed: np.ndarray) -> np.ndarray:
    """View [N, B] bytes as wider words when B allows it (popcount is order-independent)."""
    n_bytes = packed.shape[1]
    if _HAS_BITWISE_COUNT:
        for width, dtype in ((8, np.uint64), (4, np.uint32), (2, np.uint16)):
            if n_bytes % width == 0:
                return packed.view(dtype)  # [N, B / width]
    return packed


def _popcount_xor(query_words: np.ndarray, gallery_words: np.ndarray) -> np.ndarray:
    """Hamming distances of word blocks: [q, W] x [n, W] -> int32 [q, n].

    Loops over the (few) words so every temporary is a flat [q, n] array.
    """
    out = np.zeros((query_words.shape[0], gallery_words.shape[0]), dtype=np.int32)  # [q, n]
    for w in range(query_words.shape[1]):
        xor = np.bitwise_xor(query_words[:, w, None], gallery_words[None, :, w])  # [q, n]
        if _HAS_BITWISE_COUNT:
            out += np.bitwise_count(xor)
        else:  # words are bytes here
            out += _POPCOUNT_TABLE[xor]
    return out


def hamming_distance(query_packed: Any, gallery_packed: Any) -> np.ndarray:
    """Hamming distances between packed codes: [Q, B] x [N, B] -> int32 [Q, N].

    XOR + popcount (``np.bitwise_count`` when numpy has it, else a 256-entry lookup table),
    processed in blocks so the temporary stays below a few tens of MB.
    """
    query = _check_packed(query_packed, "query_packed")  # [Q, B]
    gallery = _check_packed(gallery_packed, "gallery_packed")  # [N, B]
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query codes have {query.shape[1]} bytes but gallery codes {gallery.shape[1]}; "
            "both must be packed from the same number of bits"
        )
    q_words, g_words = _words(query), _words(gallery)  # [Q, W], [N, W]
    n_query, n_gallery = q_words.shape[0], g_words.shape[0]
    out = np.empty((n_query, n_gallery), dtype=np.int32)  # [Q, N]
    if n_query == 0 or n_gallery == 0:
        return out
    # Blocks keep the [q, n] temporaries (8-byte words at most) below _BLOCK_BYTES.
    g_step = max(1, min(n_gallery, _BLOCK_BYTES // 8))
    q_step = max(1, _BLOCK_BYTES // (8 * g_step))
    for g0 in range(0, n_gallery, g_step):
        g_block = g_words[g0 : g0 + g_step]  # [n, W]
        for q0 in range(0, n_query, q_step):
            out[q0 : q0 + q_step, g0 : g0 + g_step] = _popcount_xor(
                q_words[q0 : q0 + q_step], g_block
            )  # [q, n]
    return out


def hamming_topk(query_packed: Any, gallery_packed: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest gallery codes of each query by Hamming distance.

    Ties are broken deterministically by ascending gallery index: the result is the first
    ``k`` entries of a stable sort of each row by distance. ``k`` is clipped to N.

    Returns:
        ``(indices int64 [Q, k], distances int32 [Q, k])``, each row ordered by
        (distance, index) ascending.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    query = _check_packed(query_packed, "query_packed")  # [Q, B]
    gallery = _check_packed(gallery_packed, "gallery_packed")  # [N, B]
    n_query, n_gallery = query.shape[0], gallery.shape[0]
    if n_gallery == 0:
        raise ValueError("gallery_packed is empty")
    k = min(int(k), n_gallery)
    indices = np.empty((n_query, k), dtype=np.int64)  # [Q, k]
    distances = np.empty((n_query, k), dtype=np.int32)  # [Q, k]
    gallery_idx = np.arange(n_gallery, dtype=np.int64)  # [N]
    q_step = max(1, _BLOCK_BYTES // (8 * n_gallery))
    for q0 in range(0, n_query, q_step):
        dist = hamming_distance(query[q0 : q0 + q_step], gallery)  # [q, N]
        # A unique integer key per entry encodes (distance, index) lexicographically.
        key = dist.astype(np.int64) * n_gallery + gallery_idx[None, :]  # [q, N]
        if k < n_gallery:
            part = np.argpartition(key, k - 1, axis=1)[:, :k]  # [q, k] unordered
        else:
            part = np.broadcast_to(gallery_idx, key.shape)  # [q, N]
        part_key = np.take_along_axis(key, part, axis=1)  # [q, k]
        order = np.argsort(part_key, axis=1)  # [q, k] keys are unique: deterministic
        top = np.take_along_axis(part, order, axis=1)  # [q, k]
        indices[q0 : q0 + q_step] = top
        distances[q0 : q0 + q_step] = np.take_along_axis(dist, top, axis=1)
    return indices, distances
