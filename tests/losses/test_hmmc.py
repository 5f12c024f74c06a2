"""Tests of rsitr.losses.hmmc: an explicit-loop reference, a hand-computed case, the same-image mask."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rsitr.config import load_params
from rsitr.losses.hmmc import HmmcLoss
from rsitr.losses.hmmc import HmmcLoss, max_violation_hinge


def reference_hinge(a: torch.Tensor, b: torch.Tensor, image_ids: list[int] | None, margin: float) -> float:
    """VSE++ max-violation hinge written out with loops: rows (a_i anchors) + columns (b_j anchors)."""
    a = F.normalize(a.double(), dim=-1).tolist()
    b = F.normalize(b.double(), dim=-1).tolist()
    n = len(a)
    ids = image_ids if image_ids is not None else list(range(n))
    s = [[sum(x * y for x, y in zip(a[i], b[j])) for j in range(n)] for i in range(n)]
    total = 0.0
    for i in range(n):  # anchor a_i, negatives b_j
        negatives = [s[i][j] for j in range(n) if j != i and ids[j] != ids[i]]
        if negatives:
            total += max(0.0, margin - s[i][i] + max(negatives))
    for j in range(n):  # anchor b_j, negatives a_i
        negatives = [s[i][j] for i in range(n) if i != j and ids[i] != ids[j]]
        if negatives:
            total += max(0.0, margin - s[j][j] + max(negatives))
    return total


@pytest.fixture(scope="module")
def weighted_variant(repo_root):
    params = load_params(
        repo_root / "params.yaml",
        [
            "variants.petl.method=petl",
            "variants.petl.options.margin=0.3",
            "variants.petl.options.weights.cross=1.0",
            "variants.petl.options.weights.intra_image=0.5",
            "variants.petl.options.weights.intra_text=2.0",
        ],
    )
    return params.variant("petl")


def _outputs(seed: int, batch: int = 7, dim: int = 5) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = {
        key: F.normalize(torch.randn(batch, dim, generator=generator), dim=-1)
        for key in ("image_features", "text_features", "image_features_aug", "text_features_aug")
    }
    return {**features, "logit_scale": torch.tensor(1.0)}


@pytest.mark.parametrize("image_ids", [[0, 0, 1, 2, 2, 2, 3], [0, 1, 2, 3, 4, 5, 6], None])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_terms_match_loop_reference(weighted_variant, image_ids, seed) -> None:
    outputs = _outputs(seed)
    batch = {} if image_ids is None else {"image_ids": torch.tensor(image_ids)}
    terms = HmmcLoss(weighted_variant)(outputs, batch)
    assert set(terms) == {"hmmc_cross", "hmmc_intra_image", "hmmc_intra_text"}
    v, t = outputs["image_features"], outputs["text_features"]
    expected = {
        "hmmc_cross": 1.0 * reference_hinge(v, t, image_ids, 0.3),
        "hmmc_intra_image": 0.5 * reference_hinge(v, outputs["image_features_aug"], image_ids, 0.3),
        "hmmc_intra_text": 2.0 * reference_hinge(t, outputs["text_features_aug"], image_ids, 0.3),
    }
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-5, abs=1e-6), name
        assert terms[name].ndim == 0


def test_hand_computed_two_pairs() -> None:
    # a0 = b0 = (1, 0); a1 = (0, 1); b1 = (0.6, 0.8): s = [[1, 0.6], [0, 0.8]], margin 0.5
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    rows = max(0.0, 0.5 - 1.0 + 0.6) + max(0.0, 0.5 - 0.8 + 0.0)  # 0.1 + 0
    cols = max(0.0, 0.5 - 1.0 + 0.0) + max(0.0, 0.5 - 0.8 + 0.6)  # 0 + 0.3
    assert max_violation_hinge(a, b, 0.5).item() == pytest.approx(rows + cols, abs=1e-6)
    assert rows + cols == pytest.approx(0.4)


def test_same_image_pairs_are_not_negatives() -> None:
    # two captions of one image that are near-identical would be each other's hardest negative
    a = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]]), dim=-1)
    unmasked = max_violation_hinge(a, a, 0.2).item()
    masked = max_violation_hinge(a, a, 0.2, torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)).item()
    assert unmasked > 0.7  # 0 and 1 violate the margin as rows and as columns: 4 x 0.194
    assert masked == pytest.approx(0.0, abs=1e-7)  # only the far-away sample 2 remains a negative


def test_batch_of_one_image_has_no_negatives() -> None:
    outputs = _outputs(3, batch=4)
    terms = HmmcLoss()(outputs, {"image_ids": torch.tensor([5, 5, 5, 5])})
    assert all(value.item() == 0.0 for value in terms.values())


def test_summed_over_anchors_not_averaged() -> None:
    # as PE-RSITR's VSE++ code: 2 row anchors + 2 column anchors, summed (a mean would give 1.2)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # every positive is 0, every negative is 1
    single = max_violation_hinge(a, b, 0.2).item()
    assert single == pytest.approx(4 * 1.2)  # 2 rows + 2 columns, each [0.2 - 0 + 1]_+


def test_registry_and_defaults() -> None:
    loss = HmmcLoss(variant=None)
    assert isinstance(loss, HmmcLoss)
    assert loss.margin == pytest.approx(0.2)
    assert loss.weights == {"hmmc_cross": 1.0, "hmmc_intra_image": 1.0, "hmmc_intra_text": 1.0}


def test_gradients_flow_and_bf16_inputs() -> None:
    outputs = {k: v.clone().requires_grad_(True) if k != "logit_scale" else v for k, v in _outputs(4).items()}
    terms = HmmcLoss()(outputs, {"image_ids": torch.arange(7)})
    sum(terms.values()).backward()
    assert outputs["image_features"].grad is not None and outputs["text_features_aug"].grad is not None
    half = {k: v.detach().to(torch.bfloat16) for k, v in _outputs(4).items()}
    assert HmmcLoss()(half, {})["hmmc_cross"].dtype == torch.float32


def test_missing_aug_outputs_is_a_clear_error() -> None:
    outputs = _outputs(0)
    del outputs["text_features_aug"]
    with pytest.raises(KeyError, match="text_features_aug"):
        HmmcLoss()(outputs, {})
