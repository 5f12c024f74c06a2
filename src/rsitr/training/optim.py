"""Optimizers and learning-rate schedules of the trainer (open_clip_train's choices).

Weight decay applies to matrices only; gains, biases, the class embedding and the
temperature are exempt (as open_clip_train's ``exclude``). Schedules (``train.schedule``):

* ``cosine``: a linear warm-up to the base rate, then cosine decay to zero over all
  optimizer steps (open_clip_train; EBAKER: 200 warm-up steps then cosine);
* ``step``: the base rate times ``gamma`` every ``step_epochs`` epochs (PE-RSITR's released
  schedule: x 0.7 every 20 epochs), after the same linear warm-up when ``warmup_steps > 0``;
* ``linear``: a linear warm-up over the first 10% of the optimizer steps, then linear decay to
  zero (ViLT's and so CFITR's released schedule, ``warmup_steps: 0.1`` as a fraction there;
  ``train.warmup_steps`` is not read).

See docs/methods.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rsitr.config import TrainParams


def build_optimizer(model: torch.nn.Module, train: TrainParams) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum 0.9) over the trainable parameters, decay on matrices only."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = parameter.ndim < 2 or "logit_scale" in name or name.endswith(("bias", "class_embedding"))
        (no_decay if exempt else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=train.lr)
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=0.9)
    return torch.optim.Adam(groups, lr=train.lr)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def warmup_step(batches_per_epoch: int, warmup_steps: int, step_epochs: int, gamma: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then ``gamma ** (epoch // step_epochs)`` (StepLR per epoch)."""

    def factor(step: int) -> float:
        warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
        return warm * gamma ** ((step // max(1, batches_per_epoch)) // step_epochs)

    return factor


def warmup_linear(total_steps: int, warmup_share: float = 0.1) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over ``warmup_share`` of the steps, then linear decay to 0 (ViLT)."""
    warmup = max(1, round(warmup_share * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def steps_per_epoch(items: int, global_batch: int) -> int:
    """Batches per epoch: the last incomplete batch is dropped when the set allows."""
    return max(1, items // global_batch if items > global_batch else 1)


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainParams, batches_per_epoch: int):
    if train.schedule == "step":
        factor = warmup_step(batches_per_epoch, train.warmup_steps, train.step_epochs, train.gamma)
    elif train.schedule == "linear":
        factor = warmup_linear(max(1, train.epochs * batches_per_epoch))
    else:
        factor = warmup_cosine(max(1, train.epochs * batches_per_epoch), train.warmup_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
