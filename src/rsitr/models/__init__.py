"""Models: open_clip dual encoders and the variants built on them.

``METHODS`` is the registry of training methods: each names its model class and its
loss. A variant in params.yaml picks a method; ``build_model(params, variant)`` builds it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from torch import nn

from rsitr.config import RsitrParams, VariantParams
from rsitr.errors import ConfigError, unknown_name


@dataclass(frozen=True)
class MethodSpec:
    """Where a method's model class and loss live (imported lazily)."""

    model: str  # "module:Class", a RetrievalModel subclass
    loss: str | None  # name in rsitr.losses.LOSSES, None for evaluation-only methods
    description: str


METHODS: dict[str, MethodSpec] = {
    "zeroshot": MethodSpec("rsitr.models.retrieval_model:RetrievalModel", None, "CLIP zero-shot (no training)"),
    "finetune": MethodSpec("rsitr.models.finetune:FinetuneModel", "infonce", "CLIP full fine-tune, symmetric InfoNCE"),
    "petl": MethodSpec("rsitr.models.petl:PetlModel", "hmmc", "PE-RSITR: shared MRS-Adapter on a frozen CLIP + HMMC"),
    "ebaker": MethodSpec("rsitr.models.ebaker:EbakerModel", "ebaker", "EBAKER: global+local, EBA, KER"),
}


def method_spec(method: str) -> MethodSpec:
    if method not in METHODS:
        raise ConfigError(unknown_name("method", method, list(METHODS)))
    return METHODS[method]


def _import(path: str):
    module_name, attr = path.split(":")
    return getattr(importlib.import_module(module_name), attr)


def build_model(params: RsitrParams, variant: str | VariantParams, *, load_weights: bool = True):
    """The retrieval model of ``variant`` (a name or its params), on CPU, in eval mode."""
    from rsitr.models.factory import build_clip

    variant = params.variant(variant) if isinstance(variant, str) else variant
    model_class = _import(method_spec(variant.method).model)
    bundle = build_clip(params.model, load_weights=load_weights, seed=params.seed)
    model = model_class(bundle, variant, params)
    model.configure_trainable()
    return model.eval()


def build_variant_loss(params: RsitrParams, variant: str | VariantParams) -> nn.Module | None:
    from rsitr.losses import build_loss

    variant = params.variant(variant) if isinstance(variant, str) else variant
    spec = method_spec(variant.method)
    return None if spec.loss is None else build_loss(spec.loss, variant=variant)
