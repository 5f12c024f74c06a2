"""CfitrLoss: the rank loss and the micro-batched hash losses equal the released formulas written out here."""

from __future__ import annotations

import math

import pytest
import torch

from rsitr.config.cfitr import CfitrOptions
from rsitr.errors import ConfigError
from rsitr.losses.cfitr import CfitrLoss


class _Variant:
    def __init__(self, **options):
        self.name, self.method, self.options = "cfitr", "cfitr", CfitrOptions(**options)


def _outputs(b: int = 12, k: int = 4, bits: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "rank_logits": torch.randn(b, 1 + k, generator=g),
        "image_codes": torch.tanh(torch.randn(b, bits, generator=g)),
        "text_codes": torch.tanh(torch.randn(b, bits, generator=g)),
    }


def test_rank_loss_is_cross_entropy_over_positive_and_negatives():
    outputs = _outputs()
    terms = CfitrLoss(_Variant())(outputs, {"image_ids": torch.arange(12)})
    logits = outputs["rank_logits"]
    expected = sum(-logits[i, 0] + math.log(sum(math.exp(x) for x in logits[i].tolist()))
                   for i in range(logits.shape[0])) / logits.shape[0]
    assert float(terms["rank"]) == pytest.approx(float(expected), rel=1e-5)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a @ b) / (a.norm() * b.norm()))


def _released_hash(u: torch.Tensor, v: torch.Tensor, ids: list[int], target: str, *, margin=0.2, beta=0.001,
                   gamma=0.01) -> tuple[float, float, float]:
    """One micro-batch, loop by loop: VSE++ max-violation hinge (mean), summed quantisation and balance."""
    n = u.shape[0]
    s = [[_cos(u[i], v[j]) for j in range(n)] for i in range(n)]
    row = [max([0.0] + [max(0.0, margin - s[i][i] + s[i][j]) for j in range(n) if ids[j] != ids[i]])
           for i in range(n)]
    col = [max([0.0] + [max(0.0, margin - s[j][j] + s[i][j]) for i in range(n) if ids[i] != ids[j]])
           for j in range(n)]
    hinge = sum(row) / n + sum(col) / n
    quant = 0.0
    for h in (u, v):
        for i in range(n):
            b = torch.sign(h[i]) if target == "sign" else torch.zeros_like(h[i])
            quant += float(((b - h[i]) ** 2).sum())
    balance = sum(float(h[i].sum()) ** 2 for h in (u, v) for i in range(n))
    return hinge, beta * quant, gamma * balance


@pytest.mark.parametrize("target", ["sign", "zero"])
def test_hash_losses_are_the_released_formulas_per_micro_batch(target):
    # 12 pairs = micro-batches of 8 and 4; two captions of image 3 share the first micro-batch (not negatives)
    outputs = _outputs()
    ids = [0, 1, 2, 3, 3, 5, 6, 7, 8, 9, 10, 11]
    terms = CfitrLoss(_Variant(quantization_target=target))(outputs, {"image_ids": torch.tensor(ids)})
    u, v = outputs["image_codes"], outputs["text_codes"]
    first = _released_hash(u[:8], v[:8], ids[:8], target)
    second = _released_hash(u[8:], v[8:], ids[8:], target)
    for name, index in (("hash_hinge", 0), ("hash_quantization", 1), ("hash_balance", 2)):
        assert float(terms[name]) == pytest.approx((first[index] + second[index]) / 2, rel=1e-5), name


def test_micro_batch_size_changes_the_summed_regularisers():
    outputs = _outputs()
    batch = {"image_ids": torch.arange(12)}
    small = CfitrLoss(_Variant(micro_batch=4))(outputs, batch)
    whole = CfitrLoss(_Variant(micro_batch=12))(outputs, batch)
    # sums over 4 vs over 12 samples: the same per-sample mean, 3x the total
    assert float(whole["hash_balance"]) == pytest.approx(3 * float(small["hash_balance"]), rel=1e-5)


def test_weights_scale_their_terms():
    outputs = _outputs()
    batch = {"image_ids": torch.arange(12)}
    base = CfitrLoss(_Variant())(outputs, batch)
    weighted = CfitrLoss(_Variant(rank_weight=2.0, hash_weight=0.5))(outputs, batch)
    assert float(weighted["rank"]) == pytest.approx(2 * float(base["rank"]))
    assert float(weighted["hash_hinge"]) == pytest.approx(0.5 * float(base["hash_hinge"]))


def test_options_validate_names_the_bad_value():
    with pytest.raises(ConfigError, match="fusion_heads"):
        CfitrOptions(fusion_width=30, fusion_heads=4).validate("variants.cfitr.options")
    with pytest.raises(ConfigError, match="micro_batch"):
        CfitrOptions(micro_batch=0).validate("variants.cfitr.options")
    CfitrOptions().validate("variants.cfitr.options")


def test_contrastive_option_adds_infonce_and_the_release_has_none():
    g = torch.Generator().manual_seed(2)
    outputs = {**_outputs(), "image_features": torch.nn.functional.normalize(torch.randn(12, 8, generator=g), dim=1),
               "text_features": torch.nn.functional.normalize(torch.randn(12, 8, generator=g), dim=1),
               "logit_scale": torch.tensor(10.0)}
    batch = {"image_ids": torch.arange(12)}
    assert "infonce" not in CfitrLoss(_Variant())(outputs, batch)
    terms = CfitrLoss(_Variant(contrastive_weight=0.5))(outputs, batch)
    logits = 10.0 * outputs["image_features"] @ outputs["text_features"].T
    targets = torch.arange(12)
    expected = 0.25 * (torch.nn.functional.cross_entropy(logits, targets)
                       + torch.nn.functional.cross_entropy(logits.T, targets))
    assert float(terms["infonce"]) == pytest.approx(float(expected), rel=1e-5)
