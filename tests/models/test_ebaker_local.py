"""EBAKER local alignment: batched and blockwise scores equal a per-pair reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rsitr.models.local_alignment import (
    FusedScoreOptions,
    blockwise_local_similarity,
    fused_score,
    local_similarity,
    prepare_text_tokens,
    text_position_mask,
)

SOT, EOT = 49406, 49407


def _tokens(lengths: list[int], context: int, seed: int = 0) -> torch.Tensor:
    """Token ids [C, L]: SOT, ``n`` word ids, EOT, zero padding."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.zeros(len(lengths), context, dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens[row, 0] = SOT
        tokens[row, 1 : n + 1] = torch.randint(1, 40000, (n,), generator=g)
        tokens[row, n + 1] = EOT
    return tokens


def _features(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _reference(images: torch.Tensor, texts: torch.Tensor, tokens: torch.Tensor, mode: str, normalize: bool) -> torch.Tensor:
    """Per-pair loop, written from the definition: cosines of the counted text tokens x patches, Frobenius norm."""
    n, c = images.shape[0], texts.shape[0]
    out = torch.zeros(n, c, dtype=torch.float64)
    for j in range(c):
        eot = int((tokens[j] == EOT).nonzero()[0])
        rows = list(range(1, eot)) if mode == "real" else list(range(tokens.shape[1]))
        t = texts[j, rows]  # [n_t, D]
        for i in range(n):
            p = images[i]  # [P, D]
            cos = torch.stack([torch.stack([F.cosine_similarity(a, b, dim=0) for b in p]) for a in t]) if rows else torch.zeros(0, p.shape[0])
            value = math.sqrt(float((cos**2).sum()))
            if normalize:
                value = value / math.sqrt(len(rows) * p.shape[0]) if rows else 0.0
            out[i, j] = value
    return out


@pytest.mark.parametrize("mode", ["real", "all"])
@pytest.mark.parametrize("normalize", [True, False])
def test_batched_local_similarity_equals_per_pair_loop(mode, normalize):
    lengths, context, patches, dim = [3, 7, 1, 5], 10, 6, 8
    tokens = _tokens(lengths, context)
    images = _features((3, patches, dim), seed=1)
    texts = _features((len(lengths), context, dim), seed=2)
    mask = text_position_mask(tokens, mode)
    got = local_similarity(F.normalize(images, dim=-1), prepare_text_tokens(texts, mask), mask.sum(1), normalize=normalize)
    expected = _reference(images, texts, tokens, mode, normalize)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


def test_real_positions_exclude_sot_eot_and_padding():
    tokens = _tokens([2, 0, 4], context=8)
    mask = text_position_mask(tokens, "real")
    assert mask.tolist() == [
        [False, True, True, False, False, False, False, False],
        [False] * 8,
        [False, True, True, True, True, False, False, False],
    ]
    assert text_position_mask(tokens, "all").all()


def test_caption_without_words_scores_zero_and_has_finite_gradient():
    tokens = _tokens([0, 3], context=6)
    images = F.normalize(_features((2, 4, 5), 3), dim=-1)
    texts = _features((2, 6, 5), 4).requires_grad_(True)
    mask = text_position_mask(tokens, "real")
    scores = local_similarity(images, prepare_text_tokens(texts, mask), mask.sum(1))
    assert torch.all(scores[:, 0] == 0)
    scores.sum().backward()
    assert torch.isfinite(texts.grad).all()


@pytest.mark.parametrize("method", ["direct", "gram"])
@pytest.mark.parametrize("mode", ["real", "all"])
@pytest.mark.parametrize("block_size", [1, 3, 4, 7, 13, 1000])
def test_blockwise_equals_unblocked(mode, block_size, method):
    g = torch.Generator().manual_seed(5)
    lengths = torch.randint(0, 15, (29,), generator=g).tolist()
    tokens = _tokens(lengths, context=17, seed=6)
    images = F.normalize(torch.randn(13, 9, 16, generator=g), dim=-1)
    mask = text_position_mask(tokens, mode)
    texts = prepare_text_tokens(torch.randn(29, 17, 16, generator=g), mask)
    full = local_similarity(images, texts, mask.sum(1))
    blocked = blockwise_local_similarity(images, texts, mask.float(), block_size, method=method)
    torch.testing.assert_close(blocked, full, rtol=1e-5, atol=1e-5)
    assert torch.all(blocked[:, [j for j, n in enumerate(lengths) if n == 0 and mode == "real"]] == 0)


def test_auto_method_picks_the_cheaper_exact_computation():
    g = torch.Generator().manual_seed(8)
    tokens = _tokens([20, 18, 25, 3], context=32, seed=9)
    mask = text_position_mask(tokens, "real")
    images = F.normalize(torch.randn(5, 49, 64, generator=g), dim=-1)
    texts = prepare_text_tokens(torch.randn(4, 32, 64, generator=g), mask)
    direct = blockwise_local_similarity(images, texts, mask, 2, method="direct")
    torch.testing.assert_close(blockwise_local_similarity(images, texts, mask, 2), direct, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(blockwise_local_similarity(images, texts, mask, 3, method="gram"), direct,
                               rtol=1e-5, atol=1e-5)


def test_fused_score_weights_global_and_local():
    g = torch.Generator().manual_seed(7)
    tokens = _tokens([4, 6, 2], context=9)
    image_global, text_global = torch.randn(5, 8, generator=g), torch.randn(3, 8, generator=g)
    images = F.normalize(torch.randn(5, 4, 8, generator=g), dim=-1)
    mask = text_position_mask(tokens, "real")
    texts = prepare_text_tokens(torch.randn(3, 9, 8, generator=g), mask)
    cosine = F.normalize(image_global, dim=-1) @ F.normalize(text_global, dim=-1).T
    local = local_similarity(images, texts, mask.sum(1))
    fused = fused_score(image_global, text_global, images, texts, mask,
                        FusedScoreOptions(global_weight=0.6, local_weight=0.4, block_size=2))
    torch.testing.assert_close(fused, 0.6 * cosine + 0.4 * local)
    torch.testing.assert_close(fused_score(image_global, text_global), cosine)


def test_normalised_local_score_is_within_cosine_range():
    tokens = _tokens([5, 9], context=12)
    images = F.normalize(torch.randn(4, 6, 8), dim=-1)
    mask = text_position_mask(tokens, "real")
    texts = prepare_text_tokens(torch.randn(2, 12, 8), mask)
    scores = local_similarity(images, texts, mask.sum(1), normalize=True)
    assert torch.all((scores >= 0) & (scores <= 1 + 1e-6))
    # identical tokens everywhere: every cosine is 1, the RMS cosine is 1
    same = F.normalize(torch.ones(1, 6, 8), dim=-1)
    assert torch.allclose(local_similarity(same, prepare_text_tokens(torch.ones(2, 12, 8), mask), mask.sum(1),
                                           normalize=True), torch.ones(1, 2))


@pytest.mark.parametrize("mode", ["real", "all"])
@pytest.mark.parametrize("normalize", [True, False])
def test_training_gram_path_equals_the_cosine_matrix_in_value_and_gradient(mode, normalize):
    lengths, context, patches, dim = [3, 0, 7, 5], 10, 6, 8
    tokens = _tokens(lengths, context, seed=11)
    mask = text_position_mask(tokens, mode)
    results = {}
    for method in ("direct", "gram"):
        images = _features((3, patches, dim), seed=12).requires_grad_(True)
        texts = _features((len(lengths), context, dim), seed=13).requires_grad_(True)
        scores = local_similarity(F.normalize(images, dim=-1), prepare_text_tokens(texts, mask), mask.sum(1),
                                  normalize=normalize, method=method)
        weights = _features(tuple(scores.shape), seed=14)  # a loss that weighs every pair differently
        (scores * weights).sum().backward()
        results[method] = (scores.detach(), images.grad, texts.grad)
    for got, expected in zip(results["gram"], results["direct"]):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(results["gram"][0], _reference(_features((3, patches, dim), 12),
                                                               _features((4, context, dim), 13), tokens, mode,
                                                               normalize), rtol=1e-10, atol=1e-10)


def test_auto_training_method_counts_multiply_adds():
    from rsitr.models.local_alignment import cheaper_method

    assert cheaper_method(64, 64, 64, 64, 128) == "gram"  # rsitr-tiny batch, all 64 positions
    assert cheaper_method(100, 49, 100, 77, 512) == "gram"  # ViT-B-32 at the paper's batch
    assert cheaper_method(4, 2, 4, 3, 64) == "direct"  # few tokens, wide features


def test_gram_path_sums_squares_in_fp32_under_autocast():
    tokens = _tokens([4, 6], context=8)
    mask = text_position_mask(tokens, "all")
    images = F.normalize(torch.randn(3, 5, 16), dim=-1)
    texts = prepare_text_tokens(torch.randn(2, 8, 16), mask)
    exact = local_similarity(images, texts, mask.sum(1), method="gram")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = local_similarity(images.bfloat16(), texts.bfloat16(), mask.sum(1), method="gram")
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, rtol=2e-2, atol=2e-2)
