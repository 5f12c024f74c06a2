"""Optimizers and learning-rate schedules of the trainer (open_clip_train's choices).

Weight decay applies to matrices only; gains, biases, the class embedding and the
temperature are exempt (as open_clip_train's ``exclude``). Schedules (``train.schedule``):

* ``cosine``: a linear warm-up to the base rate, then cosine decay to zero over all
  optimizer steps (open_clip_train; EBAKER: 200 warm-up steps then cosine);
* ``step``: the base rate times ``gamma`` every ``step_epochs`` scaled epochs (PE-RSITR's
  released schedule: x 0.7 every 20 epochs), after the same linear warm-up when there is one;
* ``linear``: a linear warm-up, then linear decay to zero (ViLT's and so CFITR's released
  schedule: a 10% warm-up, ``train.warmup_share: 0.1``).

The warm-up is ``warmup_share`` of the run's optimizer steps (the papers' warm-ups in relative
terms). Step counts come from the run's
``TrainSchedule`` (``rsitr.training.schedule``: the paper's epochs times the budget factor).
See docs/methods.md and docs/schedules.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rsitr.config import TrainParams
from rsitr.training.schedule import TrainSchedule


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


def warmup_step(decay_every: int, warmup_steps: int, gamma: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then ``gamma ** (step // decay_every)`` (StepLR every ``decay_every`` steps)."""

    def factor(step: int) -> float:
        warm = (step + 1) / warmup_steps if step < warmup_steps else 1.0
        return warm * gamma ** (step // max(1, decay_every))

    return factor


def warmup_linear(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over ``warmup_steps``, then linear decay to 0 (ViLT)."""
    warmup = max(1, warmup_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


def steps_per_epoch(items: int, global_batch: int) -> int:
    """Batches per epoch: the last incomplete batch is dropped when the set allows."""
    return max(1, items // global_batch if items > global_batch else 1)


def warmup_length(train: TrainParams, schedule: TrainSchedule) -> int:
    """Warm-up steps: ``warmup_share`` of the run (at least one step when the share is not 0)."""
    return max(1, round(train.warmup_share * schedule.total_steps)) if train.warmup_share > 0 else 0


def build_scheduler(optimizer: torch.optim.Optimizer, train: TrainParams, schedule: TrainSchedule):
    """The variant's learning-rate schedule over ``schedule.total_steps`` optimizer steps."""
    warmup = warmup_length(train, schedule)
    if train.schedule == "step":
        factor = warmup_step(schedule.steps_of_epochs(train.step_epochs), warmup, train.gamma)
    elif train.schedule == "linear":
        factor = warmup_linear(schedule.total_steps, warmup)
    else:
        factor = warmup_cosine(schedule.total_steps, warmup)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
