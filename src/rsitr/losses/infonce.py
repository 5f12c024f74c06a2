"""Symmetric InfoNCE, CLIP's contrastive loss (Radford et al. 2021).

Image->text and text->image cross-entropy over the batch's cosine logits. An image has
several captions, so two captions of one image are never negatives of each other: pairs
that share an image id (other than the diagonal) are masked out of the softmax.

Same-image mask ids are the near-duplicate clusters of the merged training set
(docs/methods.md, shared training protocol).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsitr.losses.base import TrainerLoss

NEG_INF = -1.0e4  # large negative instead of -inf keeps bf16/fp16 softmax finite


def same_image_mask(image_ids: torch.Tensor | None, size: int, device: torch.device) -> torch.Tensor:
    """``[B, B]`` bool: True where row and column belong to the same image but are not the diagonal."""
    if image_ids is None:
        return torch.zeros(size, size, dtype=torch.bool, device=device)
    ids = image_ids.to(device)
    mask = ids[:, None] == ids[None, :]  # [B, B]
    mask.fill_diagonal_(False)
    return mask


def masked_cross_entropy(logits: torch.Tensor, mask: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy with the diagonal as target and ``mask`` entries removed; optionally only ``rows``."""
    logits = logits.masked_fill(mask, NEG_INF)  # [B, B]
    targets = torch.arange(logits.shape[0], device=logits.device)
    if rows is not None:
        logits, targets = logits[rows], targets[rows]
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, targets)


def symmetric_infonce(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor | float,
    image_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of image->text and text->image InfoNCE on normalised features ``[B, D]``."""
    logits = logit_scale * image_features @ text_features.T  # [B, B]
    mask = same_image_mask(image_ids, logits.shape[0], logits.device)
    return 0.5 * (masked_cross_entropy(logits, mask) + masked_cross_entropy(logits.T, mask))


class InfoNCELoss(TrainerLoss):
    """Loss contract: ``outputs`` dict in, dict of named scalar terms out."""

    def __init__(self, variant: object | None = None):
        super().__init__()

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        loss = symmetric_infonce(
            outputs["image_features"], outputs["text_features"], outputs["logit_scale"], batch.get("image_ids")
        )
        return {"infonce": loss}
