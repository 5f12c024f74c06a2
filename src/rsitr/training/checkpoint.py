"""Atomic, self-describing training checkpoints.

A checkpoint names its base model (architecture + pretrained source) and holds only the
weights the variant changes (``model.saved_state_dict()``): everything for a full
fine-tune, the adapter alone for PE-RSITR. It is written to a temporary file and renamed,
so a crash mid-write never leaves a broken checkpoint behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from rsitr.config import RsitrParams, VariantParams, to_dict
from rsitr.errors import ModelError

FORMAT = "rsitr-checkpoint-v1"


def save_checkpoint(
    path: str | Path,
    *,
    model: Any,
    variant: VariantParams,
    params: RsitrParams,
    epoch: int,
    loss_fn: torch.nn.Module | None = None,
    **extra: Any,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "variant": variant.name,
        "method": variant.method,
        "base": {"arch": params.model.arch, "pretrained": params.model.pretrained},
        "variant_params": to_dict(variant),
        "epoch": epoch,
        "model": model.saved_state_dict(),
        "loss_state": loss_fn.state_dict() if loss_fn is not None else {},
    }
    for key, value in extra.items():
        payload[key] = value.state_dict() if hasattr(value, "state_dict") else value
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {str(path)!r} not found; train the variant first (`rsitr train --variant ...`)")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{str(path)!r} is not an rsitr checkpoint (expected format {FORMAT})")
    return payload


def load_trained_model(params: RsitrParams, variant: str | VariantParams, path: str | Path):
    """Rebuild the variant's model from its base weights plus the checkpoint's weights."""
    from rsitr.models import build_model

    payload = load_checkpoint(path)
    variant = params.variant(variant) if isinstance(variant, str) else variant
    if payload["base"]["arch"] != params.model.arch:
        raise ModelError(
            f"checkpoint {str(path)!r} was trained with model.arch={payload['base']['arch']!r} but params say "
            f"{params.model.arch!r}; pass --set model.arch={payload['base']['arch']}"
        )
    model = build_model(params, variant)
    model.load_saved_state_dict(payload["model"])
    return model.eval()
