"""CLIP full fine-tune (Radford et al. 2021) with symmetric InfoNCE and a learnable temperature."""

from __future__ import annotations

from rsitr.config import FinetuneOptions, MethodSpec, register_method
from rsitr.losses.infonce import InfoNCELoss
from rsitr.models.finetune import FinetuneModel

SPEC = register_method(MethodSpec(
    name="finetune",
    options=FinetuneOptions,
    model=FinetuneModel,
    loss=InfoNCELoss,
    description="CLIP full fine-tune, symmetric InfoNCE",
))
