"""Atomic, self-describing training checkpoints.

A checkpoint names its base model (architecture + pretrained source) and holds only the
weights the variant changes (``model.saved_state_dict()``): everything for a full
fine-tune, the adapter alone for PE-RSITR. It is written to a temporary file and renamed,
so a crash mid-write never leaves a broken checkpoint behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rsitr.atomic import TMP_MARK, atomic_path
from rsitr.config import RsitrParams, VariantParams, base_weights, to_dict
from rsitr.models.trained import FORMAT, load_checkpoint, load_trained_model

__all__ = ["FORMAT", "load_checkpoint", "load_trained_model", "remove_stale_temporaries", "save_checkpoint"]



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
        "base": {"arch": params.model.arch, "pretrained": base_weights(variant, params.model)},
        "variant_params": to_dict(variant),
        "epoch": epoch,
        "model": model.saved_state_dict(),
        "loss_state": loss_fn.state_dict() if loss_fn is not None else {},
    }
    for key, value in extra.items():
        payload[key] = value.state_dict() if hasattr(value, "state_dict") else value
    with atomic_path(path) as tmp:  # interrupted mid-write: no half file left behind
        torch.save(payload, tmp)
    return path


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete half-written checkpoints a killed process left in ``folder`` (never read by anyone)."""
    stale = sorted(folder.glob(f".*{TMP_MARK}*")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
