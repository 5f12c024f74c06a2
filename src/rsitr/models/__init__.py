"""Models: open_clip dual encoders and the variants built on them.

``METHODS`` is the registry of training methods (a plain dict): each names its model class,
the name of its loss in ``rsitr.losses.LOSSES`` and a description. A variant in
params.yaml picks a method; ``build_model(params, variant)`` builds it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from rsitr.config import RsitrParams, VariantParams, base_weights
from rsitr.errors import ConfigError, unknown_name
from rsitr.models.device import resolve_device
from rsitr.models.ebaker import EbakerModel
from rsitr.models.factory import build_clip
from rsitr.models.finetune import FinetuneModel
from rsitr.models.petl import PetlModel
from rsitr.models.retrieval_model import RetrievalModel

__all__ = ["METHODS", "MethodSpec", "build_model", "method_spec", "resolve_device"]


@dataclass(frozen=True)
class MethodSpec:
    """A training method: its model class and the name of its loss (None: evaluation only)."""

    model: type[RetrievalModel]
    loss: str | None
    description: str


METHODS: dict[str, MethodSpec] = {
    "zeroshot": MethodSpec(RetrievalModel, None, "CLIP zero-shot (no training)"),
    "finetune": MethodSpec(FinetuneModel, "infonce", "CLIP full fine-tune, symmetric InfoNCE"),
    "petl": MethodSpec(PetlModel, "hmmc", "PE-RSITR: shared MRS-Adapter on a frozen CLIP + HMMC"),
    "ebaker": MethodSpec(EbakerModel, "ebaker", "EBAKER: global+local, EBA, KER"),
}


def method_spec(method: str) -> MethodSpec:
    if method not in METHODS:
        raise ConfigError(unknown_name("method", method, list(METHODS)))
    return METHODS[method]


def build_model(params: RsitrParams, variant: str | VariantParams, *, load_weights: bool = True) -> RetrievalModel:
    """The retrieval model of ``variant`` (a name or its params), on CPU, in eval mode."""
    variant = params.variant(variant) if isinstance(variant, str) else variant
    model_params = dataclasses.replace(params.model, pretrained=base_weights(variant, params.model))
    bundle = build_clip(model_params, load_weights=load_weights, seed=params.seed)
    model = method_spec(variant.method).model(bundle, variant, params)
    model.configure_trainable()
    return model.eval()
