"""Losses: one class per training method, named by the method's ``MethodSpec`` (``rsitr.config.methods``).

Contract (as open_clip's ``output_dict``, written down in ``rsitr.losses.base.TrainerLoss``):
every loss is called as ``loss(outputs: dict, batch: dict) -> dict[str, Tensor]`` of named
scalar terms; the trainer sums the terms and logs each one. Stateful losses (EBAKER's
similarity bank) keep their state in buffers, so it travels with the checkpoint.
"""

from __future__ import annotations

from rsitr.config import RsitrParams, VariantParams, method_spec
from rsitr.errors import ConfigError
from rsitr.losses.base import TrainerLoss

__all__ = ["TrainerLoss", "build_variant_loss"]


def build_variant_loss(params: RsitrParams, variant: str | VariantParams) -> TrainerLoss | None:
    """The loss of the variant's method (None for an evaluation-only method such as zero-shot)."""
    variant = params.variant(variant) if isinstance(variant, str) else variant
    spec = method_spec(variant.method)
    if spec.loss is None:
        return None
    loss = spec.loss(variant=variant)
    if not isinstance(loss, TrainerLoss):
        raise ConfigError(f"method {spec.name}: its loss {type(loss).__name__} must subclass "
                          "rsitr.losses.TrainerLoss (the trainer's contract)")
    return loss
