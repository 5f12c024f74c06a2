"""Parameter accounting for ``rsitr describe``: totals and a per-component breakdown.

PE-RSITR's claim is trainable-parameter efficiency (0.16M of 151M); this makes it checkable.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def parameter_counts(module: nn.Module) -> dict[str, int]:
    params = list({id(p): p for p in module.parameters()}.values())
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


def describe_model(model: Any) -> dict[str, Any]:
    """Totals, trainable counts and per-component counts of a built variant."""
    counts = parameter_counts(model)
    components = {name: parameter_counts(part) for name, part in model.components().items()}
    covered = set()
    for part in model.components().values():
        covered |= {id(p) for p in part.parameters()}
    rest = [p for p in model.parameters() if id(p) not in covered]
    if rest:
        components["other"] = {
            "total": sum(p.numel() for p in rest),
            "trainable": sum(p.numel() for p in rest if p.requires_grad),
        }
    variant = model.variant
    trainable = counts["trainable"] if variant.trains else 0
    return {
        "variant": variant.name,
        "method": variant.method,
        "arch": model.model_params.arch,
        "total_params": counts["total"],
        "trainable_params": trainable,
        "components": components,
    }
