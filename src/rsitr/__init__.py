"""rsitr: remote-sensing image-text retrieval, from versioned data to promoted models.

Public API::

    params = rsitr.load_params("params.yaml", overrides=["train.epochs=2"])
    model = rsitr.build_model(params, "finetune")
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("rsitr")  # pyproject.toml is the one source
except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
    __version__ = "0+unknown"
__all__ = ["build_model", "load_params"]


def __getattr__(name: str) -> Any:  # lazy: `rsitr config show` need not import torch
    if name == "load_params":
        import rsitr.methods  # noqa: F401 - registers the built-in methods params.yaml names
        from rsitr.config import load_params

        return load_params
    if name == "build_model":
        import rsitr.methods  # noqa: F401
        from rsitr.models import build_model

        return build_model
    raise AttributeError(f"module 'rsitr' has no attribute {name!r}")
