"""Reading rsitr training checkpoints back into models.

A checkpoint (written by ``rsitr.training.checkpoint.save_checkpoint``) names its base model
(architecture + pretrained source) and holds only the weights the variant changes
(``model.saved_state_dict()``): everything for a full fine-tune, the adapter alone for
PE-RSITR. ``load_trained_model`` rebuilds the base and loads those weights on top.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rsitr.config import RsitrParams, VariantParams
from rsitr.errors import ModelError
from rsitr.models import build_model
from rsitr.models.retrieval_model import RetrievalModel

FORMAT = "rsitr-checkpoint-v1"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {str(path)!r} not found; train the variant first (`rsitr train --variant ...`)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - truncated zip, bad pickle, short read: all mean "unreadable"
        raise ModelError(f"checkpoint {str(path)!r} is unreadable ({type(exc).__name__}: {str(exc)[:120]}); it was "
                         "cut short or corrupted: delete it and train again (`rsitr train --variant ...`)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{str(path)!r} is not an rsitr checkpoint (expected format {FORMAT})")
    return payload


def load_trained_model(params: RsitrParams, variant: str | VariantParams, path: str | Path) -> RetrievalModel:
    """Rebuild the variant's model from its base weights plus the checkpoint's weights."""
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
