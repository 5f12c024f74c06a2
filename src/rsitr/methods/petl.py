"""PE-RSITR (Yuan, Zhan, Xiong, "Parameter-Efficient Transfer Learning for Remote Sensing
Image-Text Retrieval", IEEE TGRS 2023): one shared MRS-Adapter on a frozen CLIP, HMMC loss."""

from __future__ import annotations

from rsitr.config import MethodSpec, PetlOptions, register_method
from rsitr.losses.hmmc import HmmcLoss
from rsitr.models.petl import PetlModel

SPEC = register_method(MethodSpec(
    name="petl",
    options=PetlOptions,
    model=PetlModel,
    loss=HmmcLoss,
    description="PE-RSITR: shared MRS-Adapter on a frozen CLIP + HMMC",
))
