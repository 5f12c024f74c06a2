"""CLIP zero-shot (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021): the base model's cosine ranking, without training."""

from __future__ import annotations

from rsitr.config import MethodSpec, ZeroshotOptions, register_method
from rsitr.models.retrieval_model import RetrievalModel

SPEC = register_method(MethodSpec(
    name="zeroshot",
    options=ZeroshotOptions,
    model=RetrievalModel,
    loss=None,
    description="CLIP zero-shot (no training)",
))
