"""Perceptual hash (pHash) matching ``imagehash.phash``, in numpy only.

Same steps as imagehash 4.x: grayscale, Lanczos resize to 32x32, 2-D DCT-II, the
top-left 8x8 coefficients compared with their median. The DCT is a matrix
product instead of scipy's FFT; a positive scale factor does not change which
coefficients exceed the median, so the bits agree (the test suite checks this
against imagehash). The generator uses it to guarantee that distinct images are
not near-duplicates and that planted copies are.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIZE: int = 8
HIGHFREQ_FACTOR: int = 4
_SAMPLE_SIDE: int = HASH_SIZE * HIGHFREQ_FACTOR


def _dct_rows() -> np.ndarray:
    """The first HASH_SIZE rows of the unnormalised DCT-II matrix (scipy's ``norm=None``)."""
    k = np.arange(HASH_SIZE, dtype=np.float64)[:, None]
    n = np.arange(_SAMPLE_SIDE, dtype=np.float64)[None, :]
    return 2.0 * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * _SAMPLE_SIDE))


_DCT_ROWS: np.ndarray = _dct_rows()


def phash(image: Image.Image) -> int:
    """64-bit pHash of ``image`` as an int (bit order as ``imagehash``'s flattened array)."""
    small = image.convert("L").resize((_SAMPLE_SIDE, _SAMPLE_SIDE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    low_frequencies = _DCT_ROWS @ pixels @ _DCT_ROWS.T
    bits = (low_frequencies > np.median(low_frequencies)).flatten()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def hamming(first: int, second: int) -> int:
    """Number of differing bits between two hashes."""
    return bin(first ^ second).count("1")


def min_distance(candidate: int, hashes: np.ndarray) -> int:
    """Smallest Hamming distance from ``candidate`` to any hash in ``hashes`` (uint64 array); 64 if empty."""
    if hashes.size == 0:
        return 64
    differing = np.bitwise_xor(hashes, np.uint64(candidate))
    counts = np.unpackbits(differing.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
    return int(counts.min())
