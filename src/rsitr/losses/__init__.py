"""Losses: a registry (plain dict) of name -> loss module class.

Contract (as open_clip's ``output_dict``): every loss is called as
``loss(outputs: dict, batch: dict) -> dict[str, Tensor]`` of named scalar terms; the
trainer sums the terms and logs each one. Stateful losses (EBAKER's similarity bank)
keep their state in buffers, so it travels with the checkpoint.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from rsitr.config import RsitrParams, VariantParams
from rsitr.errors import ConfigError, unknown_name
from rsitr.losses.ebaker import EbakerLoss
from rsitr.losses.hmmc import HmmcLoss
from rsitr.losses.infonce import InfoNCELoss
from rsitr.models import method_spec

__all__ = ["LOSSES", "build_loss", "build_variant_loss"]

LOSSES: dict[str, type[nn.Module]] = {
    "infonce": InfoNCELoss,
    "hmmc": HmmcLoss,
    "ebaker": EbakerLoss,
}


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    if name not in LOSSES:
        raise ConfigError(unknown_name("loss", name, list(LOSSES)))
    return LOSSES[name](**kwargs)


def build_variant_loss(params: RsitrParams, variant: str | VariantParams) -> nn.Module | None:
    """The loss of the variant's method (None for an evaluation-only method such as zero-shot)."""
    variant = params.variant(variant) if isinstance(variant, str) else variant
    spec = method_spec(variant.method)
    return None if spec.loss is None else build_loss(spec.loss, variant=variant)
