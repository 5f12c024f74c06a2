"""CFITR hash heads: architecture, the three loss terms, training, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsitr.retrieval.binary_codes import hamming_distance, pack_codes
from rsitr.config import CoarseToFineParams
from rsitr.retrieval.hash_head import HashHeads, fit_hash_heads, hash_loss, load_hash_heads, save_hash_heads


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_head_architecture_and_code_range():
    heads = HashHeads(in_dim=12, hidden=16, bits=24)
    layers = [type(m).__name__ for m in heads.image.net]
    assert layers == ["Linear", "BatchNorm1d", "ReLU", "Linear", "Tanh"]
    out = heads(torch.randn(5, 12), torch.randn(5, 12))
    assert out["image_codes"].shape == (5, 24) and out["text_codes"].shape == (5, 24)
    assert out["image_codes"].abs().max() < 1
    packed = heads.pack("text", torch.randn(7, 12))
    assert packed.dtype == np.uint8 and packed.shape == (7, 3)
    with pytest.raises(ValueError):
        HashHeads(in_dim=4, bits=12)


def test_loss_is_a_dict_of_weighted_terms():
    torch.manual_seed(0)
    h_img, h_txt = torch.tanh(torch.randn(6, 16)), torch.tanh(torch.randn(6, 16))
    terms = hash_loss(h_img, h_txt, margin=0.2, quantization_weight=0.5, balance_weight=0.25)
    assert set(terms) == {"hinge", "quantization", "balance"}
    assert all(t.ndim == 0 for t in terms.values())
    # CFITR (released): weight * SUM over the batch, for images + for captions, written out per code and bit
    def q(h):
        return sum(sum((math.copysign(1.0, float(x)) - float(x)) ** 2 for x in code) for code in h)

    def b(h):
        return sum(sum(float(x) for x in code) ** 2 for code in h)

    assert terms["quantization"].item() == pytest.approx(0.5 * (q(h_img) + q(h_txt)), rel=1e-5)
    assert terms["balance"].item() == pytest.approx(0.25 * (b(h_img) + b(h_txt)), rel=1e-5)
    # the rsitr option averages over the batch instead (batch size 6)
    mean = hash_loss(h_img, h_txt, quantization_weight=0.5, balance_weight=0.25, regulariser_reduction="mean")
    assert mean["quantization"].item() == pytest.approx(terms["quantization"].item() / 6, rel=1e-6)
    assert mean["balance"].item() == pytest.approx(terms["balance"].item() / 6, rel=1e-6)
    torch.testing.assert_close(mean["hinge"], terms["hinge"])


def test_quantization_and_balance_behave():
    binary = torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, 1.0, -1.0]])  # ±1, balanced codes
    terms = hash_loss(binary, binary.flip(0), quantization_weight=1.0, balance_weight=1.0)
    assert terms["quantization"].item() == 0.0
    assert terms["balance"].item() == 0.0
    soft = 0.5 * binary
    # 2 modalities x 2 codes x 4 bits x 0.25, summed over the batch
    assert hash_loss(soft, soft, quantization_weight=1.0)["quantization"].item() == pytest.approx(2 * 2 * 4 * 0.25)
    one_sided = torch.full((2, 4), 0.9)  # every bit +: (sum over bits)^2 = 3.6^2 per code
    assert hash_loss(one_sided, one_sided, balance_weight=1.0)["balance"].item() == pytest.approx(2 * 2 * 3.6**2,
                                                                                                 rel=1e-5)


def test_hinge_zero_when_pairs_beat_negatives_by_the_margin():
    codes = torch.eye(4) * 2 - 1  # four distinct ±1 codes; cos(own) = 1, cos(other) = 0
    assert hash_loss(codes, codes, margin=0.5)["hinge"].item() == 0.0
    swapped = hash_loss(codes, codes.flip(0), margin=0.5)["hinge"].item()
    assert swapped > 0
    # max violation: each anchor's worst negative, both directions
    assert hash_loss(codes, codes.flip(0), margin=0.5, hardest=False)["hinge"].item() >= swapped


def _pairs(n=64, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, dim)).astype(np.float32)
    images = torch.from_numpy(base + 0.1 * rng.standard_normal((n, dim)).astype(np.float32))
    captions = torch.from_numpy(np.repeat(base, 2, axis=0) + 0.1 * rng.standard_normal((2 * n, dim)).astype(np.float32))
    return images, captions, np.repeat(np.arange(n), 2)


def test_released_summed_regularisers_still_lower_the_loss():
    images, captions, owner = _pairs()
    config = CoarseToFineParams(bits=32, hidden=32, epochs=30, lr=3e-3, batch_size=16)  # regulariser_reduction=sum
    _, history = fit_hash_heads(images, captions, owner, config, seed=0)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"] and history[-1]["hinge"] < history[0]["hinge"]


def test_training_lowers_the_loss_and_learns_codes():
    # batch-averaged regularisers (the rsitr option): at the released weights the summed ones
    # outweigh the mean hinge on this small problem (Hamming top-1 ~0.48 instead of ~0.88)
    images, captions, owner = _pairs()
    config = CoarseToFineParams(bits=32, hidden=32, epochs=30, lr=3e-3, batch_size=16, regulariser_reduction="mean")
    heads, history = fit_hash_heads(images, captions, owner, config, seed=0)
    assert len(history) == 30 and history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert history[-1]["hinge"] < history[0]["hinge"]
    assert not heads.training
    # codes retrieve the right image for most captions (Hamming top-1)
    d = hamming_distance(heads.pack("image", images), heads.pack("text", captions))  # [N, C]
    assert (d.argmin(axis=0) == owner).mean() > 0.8
    # seeded: the same run twice gives the same weights
    again, _ = fit_hash_heads(images, captions, owner, config, seed=0)
    for (name, a), (_, b) in zip(heads.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_quantization_weight_pulls_codes_to_the_corners():
    images, captions, owner = _pairs(seed=1)
    base = dict(bits=16, hidden=32, epochs=15, lr=3e-3, batch_size=16, balance_weight=0.0)
    loose, _ = fit_hash_heads(images, captions, owner, CoarseToFineParams(quantization_weight=0.0, **base))
    tight, _ = fit_hash_heads(images, captions, owner, CoarseToFineParams(quantization_weight=1.0, **base))
    gap = lambda heads: (1 - heads.image(images).abs()).mean().item()  # noqa: E731
    with torch.no_grad():
        assert gap(tight) < gap(loose)


def test_save_and_load_roundtrip(tmp_path):
    heads = HashHeads(in_dim=8, hidden=8, bits=16).eval()
    heads.reference_codes = {"text": pack_codes(np.random.default_rng(0).standard_normal((5, 16)))}
    path = save_hash_heads(tmp_path / "m" / "hash_heads.pt", heads, variant="v", history=[{"loss": 1.0}])
    loaded, meta = load_hash_heads(path)
    assert meta == {"variant": "v", "history": [{"loss": 1.0}]}
    np.testing.assert_array_equal(loaded.reference_codes["text"], heads.reference_codes["text"])
    x = torch.randn(4, 8)
    np.testing.assert_array_equal(loaded.pack("image", x), heads.pack("image", x))
    assert not list(tmp_path.glob("m/.*tmp*"))
