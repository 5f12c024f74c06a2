"""HMMC: the hybrid multi-modal contrastive loss of PE-RSITR.

Yuan, Zhan, Xiong, "Parameter-Efficient Transfer Learning for Remote Sensing Image-Text
Retrieval", IEEE TGRS 2023 (arXiv:2308.12509).

    HMMC = w_cross * L(v, t) + w_intra_image * L(v, v_aug) + w_intra_text * L(t, t_aug)

where ``v_aug`` / ``t_aug`` are the model's token-dropout views (``PetlModel.forward``)
and ``L`` is the VSE++ hinge loss (Faghri et al., BMVC 2018) with the hardest negative
only ("max violation") on cosine similarity ``s``:

    L(a, b) = sum_i [m - s(a_i, b_i) + max_j s(a_i, b_j)]_+      (rows: a_i as anchor)
            + sum_j [m - s(a_j, b_j) + max_i s(a_i, b_j)]_+      (columns: b_j as anchor)

with ``j != i`` and ``m = margin`` (0.2). Like PE-RSITR's VSE++ code, the loss is SUMMED
over the batch (not averaged), so its scale grows with the batch size. Pairs whose
samples share an image (two captions of one image in the batch) are not negatives: they
are removed from the max, for the cross term and the intra terms alike.

The paper-exact behaviour, rsitr's options and the remaining deviations: docs/methods.md (PE-RSITR).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsitr.config import PetlOptions, method_options
from rsitr.losses.base import TrainerLoss
from rsitr.losses.infonce import same_image_mask

REQUIRED_OUTPUTS = ("image_features", "text_features", "image_features_aug", "text_features_aug")


def max_violation_hinge(
    anchors: torch.Tensor,
    others: torch.Tensor,
    margin: float,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """VSE++ hardest-negative hinge, summed over both directions; ``anchors``, ``others``: ``[B, D]``.

    ``exclude`` ``[B, B]`` marks off-diagonal pairs that are not negatives (same image).
    """
    a = F.normalize(anchors.float(), dim=-1)
    b = F.normalize(others.float(), dim=-1)
    scores = a @ b.T  # [B, B] cosine similarity
    positives = scores.diagonal()  # [B]
    not_negative = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)  # [B, B]
    if exclude is not None:
        not_negative = not_negative | exclude
    row_cost = (margin - positives[:, None] + scores).clamp(min=0).masked_fill(not_negative, 0.0)  # anchor a_i
    col_cost = (margin - positives[None, :] + scores).clamp(min=0).masked_fill(not_negative, 0.0)  # anchor b_j
    return row_cost.max(dim=1).values.sum() + col_cost.max(dim=0).values.sum()


class HmmcLoss(TrainerLoss):
    """Loss contract: ``outputs`` dict in (``PetlModel.forward``), named weighted terms out."""

    def __init__(self, variant: object | None = None):
        super().__init__()
        options = method_options(variant, PetlOptions)
        self.margin = float(options.margin)
        self.weights = {
            "hmmc_cross": float(options.weights.cross),
            "hmmc_intra_image": float(options.weights.intra_image),
            "hmmc_intra_text": float(options.weights.intra_text),
        }

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        missing = [key for key in REQUIRED_OUTPUTS if key not in outputs]
        if missing:
            raise KeyError(f"HMMC loss needs the model outputs {missing} (PetlModel.forward provides them)")
        v, t = outputs["image_features"], outputs["text_features"]  # [B, D]
        exclude = same_image_mask(batch.get("image_ids"), v.shape[0], v.device)  # [B, B]
        pairs = {
            "hmmc_cross": (v, t),
            "hmmc_intra_image": (v, outputs["image_features_aug"]),
            "hmmc_intra_text": (t, outputs["text_features_aug"]),
        }
        return {
            name: self.weights[name] * max_violation_hinge(a, b, self.margin, exclude)
            for name, (a, b) in pairs.items()
        }
