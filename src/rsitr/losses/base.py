"""The trainer-loss contract, written down (as open_clip's ``ClipLoss`` is called by ``open_clip_train``).

A loss is called as ``loss(outputs, batch) -> dict[str, Tensor]`` of named scalar terms: the
trainer sums the terms, back-propagates the sum and logs each term. Everything else the trainer
(``rsitr.training.trainer``) and the data-parallel wrapper (``rsitr.training.distributed``) ask
of a loss is declared here with a neutral default, so a loss overrides only what it uses and no
caller probes for attributes:

* ``gather_keys``: the model outputs gathered across ranks under DDP (``None``: every
  per-sample tensor);
* ``local_terms``: terms computed on each rank's own samples (not scaled by the world size);
* ``on_epoch_start(epoch)``: called before each training epoch (EBAKER sets its threshold);
* ``epoch_summary()``: extra per-epoch metrics to log (EBAKER's elimination counts);
* ``write_artifacts(folder)``: files the loss leaves beside the checkpoint when training ends
  (EBAKER's ``eliminated.json``).

State a loss carries across steps lives in buffers, so it travels with the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["TrainerLoss"]


class TrainerLoss(nn.Module):
    """Base class of every training loss (see the module docstring for the contract)."""

    gather_keys: tuple[str, ...] | None = None
    local_terms: tuple[str, ...] = ()

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(outputs, batch) -> dict of terms")

    def on_epoch_start(self, epoch: int) -> None:
        """Called by the trainer before epoch ``epoch`` (0-indexed); default: nothing."""

    def epoch_summary(self) -> dict[str, float]:
        """Extra metrics logged at the end of an epoch; default: none."""
        return {}

    def write_artifacts(self, folder: Path) -> list[Path]:
        """Files written into the variant's folder when training ends; default: none."""
        return []
