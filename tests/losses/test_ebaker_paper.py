"""EBAKER's default score and loss equal the paper / released formulas, written out here.

docs/methods.md (EBAKER): local score = raw Frobenius norm of the token-pair cosine matrix
over every context position (released code: L2 norm over text, then over patches); loss =
InfoNCE(global) + InfoNCE(local) + 0.5 * MLM, each InfoNCE = CE(i2t) + CE(t2i).
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from rsitr.config.schema import EbakerOptions
from rsitr.losses.ebaker import EbakerLoss
from rsitr.models.local_alignment import (
    FusedScoreOptions,
    blockwise_local_similarity,
    fused_score,
    local_similarity,
    prepare_text_tokens,
    text_position_mask,
)

CONTEXT, PATCHES, DIM = 77, 49, 16


def _tokens(lengths: list[int]) -> torch.Tensor:
    tokens = torch.zeros(len(lengths), CONTEXT, dtype=torch.long)
    for row, n in enumerate(lengths):
        tokens[row, 0] = 49406
        tokens[row, 1 : n + 1] = torch.arange(1, n + 1) * 37 + row
        tokens[row, n + 1] = 49407
    return tokens


def _released_local(image_tokens: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
    """The released code's local score: normalise, cosines [77 x 49] per pair, ||.||_2 over text then patches."""
    images = image_tokens / image_tokens.norm(dim=-1, keepdim=True)  # [N, P, D]
    texts = text_tokens / text_tokens.norm(dim=-1, keepdim=True)  # [C, 77, D]
    out = torch.zeros(images.shape[0], texts.shape[0], dtype=images.dtype)
    for i in range(images.shape[0]):
        for j in range(texts.shape[0]):
            cosines = texts[j] @ images[i].T  # [77, P]
            out[i, j] = cosines.norm(dim=0).norm(dim=0)  # over the text axis, then over the patch axis
    return out


def _raw(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_default_local_score_is_the_released_raw_frobenius_norm_over_all_positions():
    options = EbakerOptions()
    tokens = _tokens([3, 9, 14])
    image_raw, text_raw = _raw(0, 4, PATCHES, DIM), _raw(1, 3, CONTEXT, DIM)
    mask = text_position_mask(tokens, options.text_positions)  # [C, 77]
    assert int(mask.sum()) == 3 * CONTEXT  # every context position counts
    texts = prepare_text_tokens(text_raw, mask)
    images = F.normalize(image_raw, dim=-1)
    expected = _released_local(image_raw, text_raw)
    assert float(expected.max()) > 1.5  # a raw norm, not a cosine-scale score
    got = local_similarity(images, texts, mask.sum(1), normalize=options.local_normalize)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)
    blocked = blockwise_local_similarity(images, texts, mask, 2, normalize=options.local_normalize)
    torch.testing.assert_close(blocked, expected, rtol=1e-9, atol=1e-9)
    image_global, text_global = _raw(2, 4, DIM), _raw(3, 3, DIM)
    cosine = F.normalize(image_global, dim=-1) @ F.normalize(text_global, dim=-1).T
    fused = fused_score(image_global, text_global, images, texts, mask,
                        FusedScoreOptions(global_weight=options.global_weight, local_weight=options.local_weight,
                                          block_size=2, normalize=options.local_normalize))
    torch.testing.assert_close(fused, 0.6 * cosine + 0.4 * expected)


def test_normalised_option_is_the_rms_cosine_over_real_tokens():
    tokens = _tokens([3, 9])
    image_raw, text_raw = _raw(4, 2, PATCHES, DIM), _raw(5, 2, CONTEXT, DIM)
    mask = text_position_mask(tokens, "real")
    got = local_similarity(F.normalize(image_raw, dim=-1), prepare_text_tokens(text_raw, mask), mask.sum(1),
                           normalize=True)
    for j, n in enumerate([3, 9]):
        words = text_raw[j : j + 1, 1 : n + 1]  # the word tokens only
        raw = _released_local(image_raw, torch.cat([words, words[:, :0]], dim=1))[:, 0]
        torch.testing.assert_close(got[:, j], raw / math.sqrt(n * PATCHES))


def _batch_outputs(size: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    tokens = _tokens([2 + k for k in range(size)])
    mask = text_position_mask(tokens, "all")
    image_tokens = torch.randn(size, PATCHES, DIM, generator=g)
    text_tokens = torch.randn(size, CONTEXT, DIM, generator=g)
    outputs = {
        "image_features": F.normalize(torch.randn(size, DIM, generator=g), dim=-1),
        "text_features": F.normalize(torch.randn(size, DIM, generator=g), dim=-1),
        "logit_scale": torch.tensor(20.0),
        "image_tokens": F.normalize(image_tokens, dim=-1),
        "text_tokens": prepare_text_tokens(text_tokens, mask),
        "text_mask": mask,
        "mlm_logits": torch.randn(7, 50, generator=g),
        "mlm_targets": torch.randint(0, 50, (7,), generator=g),
    }
    return outputs, _released_local(image_tokens, text_tokens)


def _ce(logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -log softmax(row)[diagonal], written out."""
    return torch.stack([torch.logsumexp(row, 0) - row[i] for i, row in enumerate(logits)]).mean()


def test_default_total_loss_is_paper_eq_13():
    outputs, local = _batch_outputs(6)
    loss = EbakerLoss(options=EbakerOptions())
    loss.on_epoch_start(0)  # before the drop epoch: no elimination
    terms = loss(outputs, {"image_ids": torch.arange(6)})
    g = 20.0 * outputs["image_features"] @ outputs["text_features"].T  # [B, B]
    l = 20.0 * local.float()  # [B, B] 20 x the raw Frobenius norm (released code)
    mlm = torch.stack([torch.logsumexp(r, 0) - r[t]
                       for r, t in zip(outputs["mlm_logits"], outputs["mlm_targets"])]).mean()
    expected = (_ce(g) + _ce(g.T)) + (_ce(l) + _ce(l.T)) + 0.5 * mlm
    torch.testing.assert_close(sum(terms.values()), expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(terms["global_infonce"], _ce(g) + _ce(g.T))


def test_mean_direction_option_halves_each_infonce():
    outputs, _ = _batch_outputs(5, seed=1)
    summed = EbakerLoss(options=EbakerOptions())(outputs, {})
    averaged = EbakerLoss(options=replace(EbakerOptions(), direction_reduction="mean"))(outputs, {})
    for name in ("global_infonce", "local_infonce"):
        torch.testing.assert_close(averaged[name], 0.5 * summed[name])
    torch.testing.assert_close(averaged["mlm"], summed["mlm"])


def test_scope_comes_from_the_options():
    assert EbakerLoss(options=EbakerOptions()).scope == "bank"
    assert EbakerLoss(options=replace(EbakerOptions(), scope="epoch")).scope == "epoch"


def test_a_variant_with_the_wrong_options_type_is_an_error():
    from types import SimpleNamespace

    from rsitr.config.schema import PetlOptions
    from rsitr.errors import ConfigError

    variant = SimpleNamespace(name="ebaker", method="ebaker", options=PetlOptions())
    with pytest.raises(ConfigError, match="variant ebaker: options must be EbakerOptions"):
        EbakerLoss(variant)
