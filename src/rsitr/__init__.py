"""rsitr: remote-sensing image-text retrieval, from versioned data to promoted models.

Public API::

    params = rsitr.load_params("params.yaml", overrides=["train.epochs=2"])
    model = rsitr.build_model(params, "finetune")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["build_model", "load_params"]


def __getattr__(name: str) -> Any:  # lazy: `rsitr config show` need not import torch
    if name == "load_params":
        from rsitr.config import load_params

        return load_params
    if name == "build_model":
        from rsitr.models import build_model

        return build_model
    raise AttributeError(f"module 'rsitr' has no attribute {name!r}")
