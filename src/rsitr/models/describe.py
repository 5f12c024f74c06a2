"""Parameter accounting for ``rsitr describe``: totals and a per-component breakdown.

PE-RSITR's claim is trainable-parameter efficiency (0.16M of 151M); this makes it checkable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn


@dataclass(frozen=True)
class ParameterCount:
    """How many parameters a module holds, and how many of them require gradients."""

    trainable: int
    total: int

    def logged(self, trains: bool) -> dict[str, int]:
        """``total_params`` / ``trainable_params`` as runs log them: a method that trains nothing reports 0."""
        return {"total_params": self.total, "trainable_params": self.trainable if trains else 0}


def count_parameters(parameters: nn.Module | Iterable[nn.Parameter]) -> ParameterCount:
    """The one parameter counter: a module's parameters (each shared one once) or a list of them."""
    if isinstance(parameters, nn.Module):
        parameters = parameters.parameters()
    unique = list({id(p): p for p in parameters}.values())
    return ParameterCount(trainable=sum(p.numel() for p in unique if p.requires_grad),
                          total=sum(p.numel() for p in unique))


def parameter_counts(module: nn.Module | Iterable[nn.Parameter]) -> dict[str, int]:
    """``{"total", "trainable"}`` of ``rsitr describe``'s component breakdown."""
    counts = count_parameters(module)
    return {"total": counts.total, "trainable": counts.trainable}


def describe_model(model: Any) -> dict[str, Any]:
    """Totals, trainable counts and per-component counts of a built variant."""
    counts = count_parameters(model)
    components = {name: parameter_counts(part) for name, part in model.components().items()}
    covered = set()
    for part in model.components().values():
        covered |= {id(p) for p in part.parameters()}
    rest = [p for p in model.parameters() if id(p) not in covered]
    if rest:
        components["other"] = parameter_counts(rest)
    variant = model.variant
    return {
        "variant": variant.name,
        "method": variant.method,
        "arch": model.model_params.arch,
        **counts.logged(variant.trains),
        "components": components,
    }
