"""Read weight files into open_clip state dicts: open_clip/RemoteCLIP, GeoRSCLIP (ITRA), rsitr.

RemoteCLIP (Liu et al. 2023) releases plain open_clip state dicts. GeoRSCLIP (RS5M, Zhang
et al. 2023) releases checkpoints trained with ITRA, whose keys carry ``image_backbone.``
(open_clip's ``visual.``) and ``text_backbone.`` (open_clip's text tower at the top level)
prefixes. Training frameworks also wrap weights in ``{"state_dict": ...}`` with
``module.`` prefixes. ``read_state_dict`` undoes all of that.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rsitr.errors import ModelError

ITRA_PREFIXES = {"image_backbone.": "visual.", "text_backbone.": ""}
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


def load_weight_file(path: str | Path) -> Mapping[str, Any]:
    """``torch.load`` a checkpoint (weights only) or a ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {str(path)!r} not found; set model.pretrained to an existing file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decode failure is a bad file
        raise ModelError(f"cannot read checkpoint {str(path)!r}: {exc}") from None


def unwrap_state_dict(blob: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Find the tensor mapping inside a training checkpoint and drop ``module.`` prefixes."""
    state: Mapping[str, Any] = blob
    for key in _WRAPPER_KEYS:
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelError("checkpoint holds no tensors; expected an open_clip state dict")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def convert_itra_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """GeoRSCLIP/ITRA keys -> open_clip keys (``image_backbone.`` -> ``visual.``, ``text_backbone.`` dropped)."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix, replacement in ITRA_PREFIXES.items():
            if key.startswith(prefix):
                key = replacement + key[len(prefix):]
                break
        converted[key] = value
    return converted


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Any supported weight file -> an open_clip ``CLIP`` state dict."""
    state = unwrap_state_dict(load_weight_file(path))
    if any(k.startswith(tuple(ITRA_PREFIXES)) for k in state):
        state = convert_itra_state_dict(state)
    return state
