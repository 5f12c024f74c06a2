"""A variant's paper schedule, scaled by the one budget factor, in optimizer steps.

Every paper here quotes its schedule in epochs of its training captions at its own batch size
(``docs/methods.md``): PE-RSITR 30 epochs at batch 16 with StepLR every 20 epochs; EBAKER 7
epochs at batch 100, EBA from epoch 4; CFITR 50 epochs at batch 256. rsitr keeps each
variant's epochs and batch size as released and multiplies every epoch-denominated quantity
by ``train.budget`` (one factor for all variants; 1 = the papers' length), so the ratio of
optimizer steps between methods is the papers' ratio whatever the factor (``docs/schedules.md``).

A scaled epoch is ``budget`` data passes long, so the run is rarely a whole number of passes:

* ``total_steps = round(budget x epochs x steps_per_pass)`` (at least 1);
* the data is read pass by pass (a fresh shuffle each pass, as before); the last pass stops
  at ``total_steps``; validation and the resumable checkpoint follow each pass;
* paper epoch ``e`` starts at step ``round(e x budget x steps_per_pass)``: the trainer calls
  the loss's ``on_epoch_start(e)`` there (EBAKER refreshes its EBA threshold from the bank and
  eliminates from ``drop_epoch`` on), so EBA acts at the same share of training as released;
* the step schedule decays every ``step_epochs`` scaled epochs, the warm-up is a share of
  ``total_steps`` (``warmup_share``) or a fixed count (``warmup_steps``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainSchedule:
    """Where one run's steps fall: passes over the data and scaled paper epochs."""

    steps_per_pass: int  # optimizer steps in one pass over the training captions
    total_steps: int  # the run's optimizer steps
    epochs: int  # paper epochs (train.epochs)
    budget: float  # train.budget: data passes per paper epoch

    @classmethod
    def of(cls, epochs: int, budget: float, steps_per_pass: int) -> "TrainSchedule":
        steps_per_pass = max(1, int(steps_per_pass))
        total = max(1, round(budget * epochs * steps_per_pass))
        return cls(steps_per_pass=steps_per_pass, total_steps=total, epochs=int(epochs), budget=float(budget))

    @property
    def passes(self) -> int:
        """Data passes the run reads (the last one may be partial)."""
        return math.ceil(self.total_steps / self.steps_per_pass)

    @property
    def steps_per_epoch(self) -> float:
        """Optimizer steps in one scaled paper epoch."""
        return self.budget * self.steps_per_pass

    def steps_in_pass(self, index: int) -> int:
        """Optimizer steps of pass ``index`` (0-indexed)."""
        return max(0, min(self.steps_per_pass, self.total_steps - index * self.steps_per_pass))

    def epoch_start(self, epoch: int) -> int:
        """The step at which paper epoch ``epoch`` begins (clamped into the run)."""
        return min(self.total_steps - 1, round(epoch * self.steps_per_epoch))

    def epochs_starting_at(self, step: int) -> list[int]:
        """The paper epochs that begin at optimizer step ``step`` (several when epochs are under a step)."""
        return [e for e in range(self.epochs) if self.epoch_start(e) == step]

    def paper_epoch(self, step: int) -> float:
        """Progress after ``step`` optimizer steps, in paper epochs."""
        return step / self.steps_per_epoch if self.steps_per_epoch > 0 else 0.0

    def steps_of_epochs(self, epochs: float) -> int:
        """``epochs`` scaled paper epochs in optimizer steps (at least 1)."""
        return max(1, round(epochs * self.steps_per_epoch))
