"""CFITR's training loss: single-stream rank loss + dual-stream hashing loss (released code).

    rank = rank_weight * CE(rank_logits, 0)      # rank_logits [B, 1 + k]: column 0 is the matching caption
    hash = hash_weight * (hash_hinge + hash_quantization + hash_balance)   (``rsitr.losses.hashing``)

``rank`` is ViLT's image-text retrieval loss as CFITR's ``compute_irtr``: the cross-entropy
of each image's scores over its caption and ``k`` (15) negatives, no margin, averaged over
images. The hash terms are per micro-batch of ``micro_batch`` (8) and averaged over them,
as the release's accumulated micro-batches. The dual stream has no contrastive loss of its
own (``compute_irtr_be`` only builds features), as released; ``contrastive_weight`` > 0 adds
CLIP's symmetric InfoNCE on the globals (rsitr option, term ``infonce``). Terms are returned by name,
weights applied; the trainer sums them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsitr.config import method_options
from rsitr.config.cfitr import CfitrOptions
from rsitr.losses.base import TrainerLoss
from rsitr.losses.hashing import micro_batched_hash_loss
from rsitr.losses.infonce import symmetric_infonce

REQUIRED_OUTPUTS = ("rank_logits", "image_codes", "text_codes")


def rank_loss(rank_logits: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``rank_logits [B, 1 + k]`` with target 0 (the matching caption)."""
    targets = torch.zeros(rank_logits.shape[0], dtype=torch.long, device=rank_logits.device)
    return F.cross_entropy(rank_logits.float(), targets)


class CfitrLoss(TrainerLoss):
    """Loss contract: ``CfitrModel.forward`` outputs in, named weighted scalar terms out."""

    def __init__(self, variant: object | None = None):
        super().__init__()
        self.options: CfitrOptions = method_options(variant, CfitrOptions)

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        missing = [key for key in REQUIRED_OUTPUTS if key not in outputs]
        if missing:
            raise KeyError(f"CFITR loss needs the model outputs {missing} (CfitrModel.forward provides them)")
        o = self.options
        hash_terms = micro_batched_hash_loss(
            outputs["image_codes"], outputs["text_codes"], batch.get("image_ids"),
            micro_batch=o.micro_batch, margin=o.margin, quantization_weight=o.quantization_weight,
            balance_weight=o.balance_weight, quantization_target=o.quantization_target,
        )
        terms = {"rank": o.rank_weight * rank_loss(outputs["rank_logits"])}
        terms.update({name: o.hash_weight * value for name, value in hash_terms.items()})
        if o.contrastive_weight > 0:  # rsitr option (not released): InfoNCE on the dual stream's globals
            terms["infonce"] = o.contrastive_weight * symmetric_infonce(
                outputs["image_features"], outputs["text_features"], outputs["logit_scale"], batch.get("image_ids"))
        return terms
