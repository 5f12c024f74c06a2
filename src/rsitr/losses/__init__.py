"""Losses: a registry of name -> loss module factory.

Contract (as open_clip's ``output_dict``): every loss is called as
``loss(outputs: dict, batch: dict) -> dict[str, Tensor]`` of named scalar terms; the
trainer sums the terms and logs each one. Stateful losses (EBAKER's similarity bank)
keep their state in buffers, so it travels with the checkpoint.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from rsitr.errors import ConfigError, unknown_name

# name -> "module:factory"; imported lazily so that a variant's code loads only when used.
LOSSES: dict[str, str] = {
    "infonce": "rsitr.losses.infonce:InfoNCELoss",
    "hmmc": "rsitr.losses.hmmc:HmmcLoss",
    "ebaker": "rsitr.losses.ebaker:EbakerLoss",
}


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    if name not in LOSSES:
        raise ConfigError(unknown_name("loss", name, list(LOSSES)))
    module_name, attr = LOSSES[name].split(":")
    return getattr(importlib.import_module(module_name), attr)(**kwargs)
