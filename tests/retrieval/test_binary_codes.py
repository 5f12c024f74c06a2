"""Tests of rsitr.retrieval.binary_codes: packing, Hamming distance, Hamming top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsitr.retrieval import binary_codes as bc
from rsitr.retrieval.binary_codes import hamming_distance, hamming_topk, pack_codes, unpack_codes


def _random_signs(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    return np.where(rng.random((n, bits)) < 0.5, -1.0, 1.0)  # [n, bits] ±1


def test_bit_order_is_big_endian_and_zero_is_positive() -> None:
    codes = np.array(
        [
            [1, -1, -1, -1, -1, -1, -1, -1],  # first bit -> most significant bit: 0b10000000
            [-1, -1, -1, -1, -1, -1, -1, 1],  # last bit -> least significant: 0b00000001
            [0.0, -0.5, 2.0, -3.0, -1, -1, -1, -1e-9],  # 0 and 2.0 -> 1: 0b10100000
        ]
    )
    np.testing.assert_array_equal(pack_codes(codes), [[128], [1], [160]])
    assert pack_codes(codes).dtype == np.uint8


def test_pack_shapes_and_padding() -> None:
    rng = np.random.default_rng(0)
    for bits, n_bytes in [(64, 8), (128, 16), (96, 12), (13, 2)]:
        codes = _random_signs(rng, 7, bits)
        packed = pack_codes(codes)
        assert packed.shape == (7, n_bytes)
        # Round trip, signed and as bits; padding bits are zero.
        np.testing.assert_array_equal(unpack_codes(packed, n_bits=bits), codes.astype(np.int8))
        np.testing.assert_array_equal(unpack_codes(packed, n_bits=bits, signed=False), codes > 0)
        assert unpack_codes(packed).shape == (7, 8 * n_bytes)
        assert not unpack_codes(packed, signed=False)[:, bits:].any()


def test_pack_accepts_bool_and_torch() -> None:
    rng = np.random.default_rng(1)
    real = rng.standard_normal((5, 32)).astype(np.float32)
    expected = pack_codes(real)
    np.testing.assert_array_equal(pack_codes(real >= 0), expected)
    np.testing.assert_array_equal(pack_codes(torch.from_numpy(real)), expected)
    np.testing.assert_array_equal(pack_codes(torch.sign(torch.from_numpy(real))), expected)
    np.testing.assert_array_equal(pack_codes(torch.from_numpy(real).to(torch.bfloat16)), expected)


def test_pack_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="ambiguous"):
        pack_codes(np.ones((2, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="2-D"):
        pack_codes(np.ones(8))
    with pytest.raises(ValueError, match="NaN"):
        pack_codes(np.array([[np.nan] * 8]))
    with pytest.raises(ValueError, match="n_bits"):
        unpack_codes(np.zeros((1, 2), dtype=np.uint8), n_bits=17)


@pytest.mark.parametrize("bits", [64, 128, 96, 8, 24, 13])
def test_hamming_matches_unpacked_comparison(bits: int) -> None:
    rng = np.random.default_rng(bits)
    query = _random_signs(rng, 9, bits)  # [Q, bits]
    gallery = _random_signs(rng, 31, bits)  # [N, bits]
    gallery[3] = query[0]  # distance 0
    gallery[4] = -query[0]  # distance = bits
    expected = (query[:, None, :] != gallery[None, :, :]).sum(axis=2)  # [Q, N]
    got = hamming_distance(pack_codes(query), pack_codes(gallery))
    assert got.shape == (9, 31) and np.issubdtype(got.dtype, np.integer)
    np.testing.assert_array_equal(got, expected)
    assert got[0, 3] == 0 and got[0, 4] == bits
    # ±1 inner product identity <a, b> = bits - 2 d.
    np.testing.assert_array_equal(query @ gallery.T, bits - 2 * got)


@pytest.mark.parametrize("bits", [64, 96, 128])
def test_lookup_table_and_chunked_paths(monkeypatch: pytest.MonkeyPatch, bits: int) -> None:
    rng = np.random.default_rng(100 + bits)
    query, gallery = _random_signs(rng, 17, bits), _random_signs(rng, 45, bits)
    expected = (query[:, None, :] != gallery[None, :, :]).sum(axis=2)
    qp, gp = pack_codes(query), pack_codes(gallery)
    monkeypatch.setattr(bc, "_HAS_BITWISE_COUNT", False)  # 256-entry lookup table
    np.testing.assert_array_equal(hamming_distance(qp, gp), expected)
    monkeypatch.setattr(bc, "_BLOCK_BYTES", 40)  # tiny blocks over N and Q
    np.testing.assert_array_equal(hamming_distance(qp, gp), expected)
    monkeypatch.setattr(bc, "_HAS_BITWISE_COUNT", hasattr(np, "bitwise_count"))
    np.testing.assert_array_equal(hamming_distance(qp, gp), expected)
    idx, dist = hamming_topk(qp, gp, 6)
    np.testing.assert_array_equal(idx, np.argsort(expected, axis=1, kind="stable")[:, :6])


def test_hamming_rejects_mismatch() -> None:
    with pytest.raises(ValueError, match="bytes"):
        hamming_distance(np.zeros((2, 8), np.uint8), np.zeros((3, 16), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        hamming_distance(np.zeros((2, 8), np.int64), np.zeros((3, 8), np.uint8))


@pytest.mark.parametrize("k", [1, 5, 40, 1000])
def test_topk_matches_stable_sort(k: int) -> None:
    rng = np.random.default_rng(k)
    bits = 16  # few bits -> many equal distances
    query, gallery = _random_signs(rng, 12, bits), _random_signs(rng, 60, bits)
    gallery[10] = gallery[50] = query[0]  # two exact matches: index 10 must come first
    expected_dist = (query[:, None, :] != gallery[None, :, :]).sum(axis=2)  # [Q, N]
    k_eff = min(k, 60)
    expected_idx = np.array(
        [sorted(range(60), key=lambda n: (expected_dist[q, n], n))[:k_eff] for q in range(12)]
    )
    idx, dist = hamming_topk(pack_codes(query), pack_codes(gallery), k)
    assert idx.shape == dist.shape == (12, k_eff)
    np.testing.assert_array_equal(idx, expected_idx)
    np.testing.assert_array_equal(dist, np.take_along_axis(expected_dist, expected_idx, axis=1))
    assert idx[0, 0] == 10 and dist[0, 0] == 0
    if k >= 2:
        assert idx[0, 1] == 50


def test_topk_invalid_k() -> None:
    packed = pack_codes(np.ones((2, 8)))
    with pytest.raises(ValueError, match="k must be"):
        hamming_topk(packed, packed, 0)
