"""Tests of rsitr.retrieval.ppsr against an independent loop implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsitr.retrieval.ppsr import ppsr


def _ppsr_loop(s: np.ndarray, k: int) -> np.ndarray:
    """Reference: explicit python loops with sorted() over every row and column."""
    n_rows, n_cols = s.shape
    row_mean = []
    for i in range(n_rows):
        top = sorted(s[i, :].tolist(), reverse=True)[:k]
        row_mean.append(sum(top) / len(top))
    col_mean = []
    for j in range(n_cols):
        top = sorted(s[:, j].tolist(), reverse=True)[:k]
        col_mean.append(sum(top) / len(top))
    out = np.empty((n_rows, n_cols))
    for i in range(n_rows):
        for j in range(n_cols):
            out[i, j] = 2 * s[i, j] - row_mean[i] - col_mean[j]
    return out


def test_hand_computed_k1() -> None:
    # k = 1: subtract the row maximum and the column maximum.
    s = np.array([[0.9, 0.1], [0.8, 0.7]])
    # row maxima (0.9, 0.8); column maxima (0.9, 0.7).
    # S'[0,0] = 1.8 - 0.9 - 0.9 = 0.0   S'[0,1] = 0.2 - 0.9 - 0.7 = -1.4
    # S'[1,0] = 1.6 - 0.8 - 0.9 = -0.1  S'[1,1] = 1.4 - 0.8 - 0.7 = -0.1
    np.testing.assert_allclose(ppsr(s, k=1), [[0.0, -1.4], [-0.1, -0.1]], atol=1e-12)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 35), (40, 12), (64, 320)])
@pytest.mark.parametrize("k", [1, 3, 10, 100])
def test_numpy_matches_loop(shape: tuple[int, int], k: int) -> None:
    rng = np.random.default_rng(shape[0] * 31 + shape[1] + k)
    s = rng.standard_normal(shape)
    np.testing.assert_allclose(ppsr(s, k=k), _ppsr_loop(s, k), rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 10, 50])
def test_torch_matches_loop_and_keeps_type(k: int) -> None:
    rng = np.random.default_rng(k)
    s = np.round(rng.random((30, 150)), 1)  # with ties
    out = ppsr(torch.from_numpy(s), k=k)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), _ppsr_loop(s, k), rtol=0, atol=1e-12)
    out32 = ppsr(torch.from_numpy(s).float(), k=k)
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), _ppsr_loop(s, k), rtol=0, atol=1e-5)


def test_default_k_is_ten_and_integer_input() -> None:
    rng = np.random.default_rng(0)
    hamming_similarity = rng.integers(-128, 129, size=(20, 30))  # e.g. <a, b> of ±1 codes
    out = ppsr(hamming_similarity)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, _ppsr_loop(hamming_similarity.astype(float), 10), atol=1e-9)
    out_t = ppsr(torch.from_numpy(hamming_similarity))
    assert out_t.is_floating_point()
    np.testing.assert_allclose(out_t.double().numpy(), out, atol=1e-4)


def test_float32_numpy_keeps_dtype() -> None:
    s = np.random.default_rng(1).random((5, 8)).astype(np.float32)
    out = ppsr(s, k=3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _ppsr_loop(s.astype(np.float64), 3), atol=1e-6)


def test_hub_is_demoted() -> None:
    # Caption 0 is a hub: it scores high for every image. Without PPSR image 1 retrieves
    # the hub first; after PPSR its own caption 1 comes first.
    s = np.array(
        [
            [0.90, 0.20, 0.10],
            [0.85, 0.80, 0.10],
            [0.88, 0.10, 0.70],
        ]
    )
    assert int(np.argmax(s[1])) == 0
    assert int(np.argmax(ppsr(s, k=2)[1])) == 1


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_invalid_k(k) -> None:
    with pytest.raises(ValueError, match="k must be"):
        ppsr(np.zeros((2, 2)), k=k)


def test_invalid_shape() -> None:
    with pytest.raises(ValueError, match="2-D"):
        ppsr(np.zeros(3))
    with pytest.raises(ValueError, match="2-D"):
        ppsr(torch.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        ppsr(np.zeros((0, 3)))
