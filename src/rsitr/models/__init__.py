"""Models: open_clip dual encoders and the variants built on them.

Each method's model class is named by its ``MethodSpec`` (``rsitr.config.methods``; the
built-in methods declare themselves in ``rsitr.methods``). A variant in params.yaml picks a
method; ``build_model(params, variant)`` builds it.
"""

from __future__ import annotations

import dataclasses

from rsitr.config import RsitrParams, VariantParams, base_weights, method_spec
from rsitr.errors import ConfigError
from rsitr.models.device import resolve_device
from rsitr.models.factory import build_clip
from rsitr.models.retrieval_model import RetrievalModel

__all__ = ["build_model", "resolve_device"]


def build_model(params: RsitrParams, variant: str | VariantParams, *, load_weights: bool = True) -> RetrievalModel:
    """The retrieval model of ``variant`` (a name or its params), on CPU, in eval mode."""
    variant = params.variant(variant) if isinstance(variant, str) else variant
    spec = method_spec(variant.method)
    model_params = dataclasses.replace(params.model, pretrained=base_weights(variant, params.model))
    bundle = build_clip(model_params, load_weights=load_weights, seed=params.seed)
    model = spec.model(bundle, variant, params)
    if not isinstance(model, RetrievalModel):
        raise ConfigError(f"method {spec.name}: its model {type(model).__name__} must subclass "
                          "rsitr.models.retrieval_model.RetrievalModel")
    model.configure_trainable()
    return model.eval()
