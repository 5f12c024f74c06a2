"""CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval with a
Coarse-to-Fine Approach", IEEE GRSL 2024): a dual-stream hashing module shortlists, a single-stream
module re-scores the shortlist (``rsitr.models.cfitr``, ``rsitr.losses.cfitr``)."""

from __future__ import annotations

from rsitr.config import MethodSpec, register_method
from rsitr.config.cfitr import CfitrOptions
from rsitr.losses.cfitr import CfitrLoss
from rsitr.models.cfitr import CfitrModel

SPEC = register_method(MethodSpec(
    name="cfitr",
    options=CfitrOptions,
    model=CfitrModel,
    loss=CfitrLoss,
    description="CFITR: hash codes (DSHM) shortlist, single-stream module (SSM) re-scores",
))
