"""Paper schedules scaled by one budget factor: the papers' step ratios, EBA and StepLR at the same share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from toy_data import toy_params_dict
from rsitr.config import load_params, params_from_dict
from rsitr.errors import ConfigError
from rsitr.training.optim import build_scheduler
from rsitr.training.schedule import TrainSchedule

REPO = Path(__file__).resolve().parents[2]
# the captions of each paper's training data and its released schedule (docs/methods.md, docs/schedules.md)
PAPER_STEPS = {"petl": 30 / 16, "ebaker": 7 / 100, "cfitr": 50 / 256}  # epochs / batch: steps per caption


def test_a_scaled_run_is_budget_times_the_papers_epochs_in_steps():
    schedule = TrainSchedule.of(epochs=7, budget=0.25, steps_per_pass=40)
    assert schedule.total_steps == 70  # round(0.25 * 7 * 40)
    assert schedule.passes == 2 and [schedule.steps_in_pass(i) for i in range(3)] == [40, 30, 0]
    assert [schedule.epoch_start(e) for e in range(7)] == [0, 10, 20, 30, 40, 50, 60]
    assert schedule.epochs_starting_at(40) == [4] and schedule.epochs_starting_at(41) == []
    assert schedule.paper_epoch(70) == pytest.approx(7.0)


def test_epochs_shorter_than_a_step_all_start_and_none_is_lost():
    schedule = TrainSchedule.of(epochs=7, budget=0.01, steps_per_pass=40)  # 0.4 steps per epoch
    assert schedule.total_steps == 3
    starts = [e for step in range(schedule.total_steps) for e in schedule.epochs_starting_at(step)]
    assert starts == list(range(7))


def test_the_default_run_keeps_the_papers_optimizer_step_ratios():
    params = load_params(REPO / "params.yaml")
    captions = 5920  # any training set: the ratio does not depend on it
    steps = {name: TrainSchedule.of(params.variant(name).train.epochs, params.variant(name).train.budget,
                                    captions // params.variant(name).train.batch_size).total_steps
             for name in PAPER_STEPS}
    budgets = {params.variant(name).train.budget for name in params.variants}
    assert budgets == {params.train.budget}  # one factor for every variant
    paper = {name: PAPER_STEPS[name] / PAPER_STEPS["ebaker"] for name in PAPER_STEPS}
    for name in PAPER_STEPS:  # within the rounding of whole batches and steps
        assert steps[name] / steps["ebaker"] == pytest.approx(paper[name], rel=0.03), name
    assert paper["petl"] == pytest.approx(26.8, abs=0.05)


def test_a_variant_may_not_set_its_own_budget():
    raw = toy_params_dict(Path("/unused"))
    raw["variants"]["finetune"]["train"] = {"budget": 2.0}
    with pytest.raises(ConfigError, match=r"variants.finetune.train.budget: the budget factor is one for every variant"):
        params_from_dict(raw)
    with pytest.raises(ConfigError, match=r"train.budget: expected a positive factor"):
        params_from_dict(toy_params_dict(Path("/unused"), budget=0.0))


def test_steplr_decays_at_the_same_share_of_the_scaled_run():
    raw = toy_params_dict(Path("/unused"), epochs=30, schedule="step", step_epochs=20, gamma=0.7, warmup_share=0.0,
                          budget=0.1)
    train = params_from_dict(raw).train
    schedule = TrainSchedule.of(train.epochs, train.budget, steps_per_pass=50)  # 150 steps; decay at step 100
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    scheduler = build_scheduler(optimizer, train, schedule)
    rates = []
    for _ in range(schedule.total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:100] == pytest.approx([2e-4] * 100)
    assert rates[100:] == pytest.approx([2e-4 * 0.7] * 50)


def test_warmup_is_a_share_of_the_run():
    raw = toy_params_dict(Path("/unused"), epochs=10, warmup_share=0.1, budget=0.5)
    train = params_from_dict(raw).train
    schedule = TrainSchedule.of(train.epochs, train.budget, steps_per_pass=40)  # 200 steps, 20 of warm-up
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, train, schedule)
    rates = []
    for _ in range(schedule.total_steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(1 / 20) and rates[19] == pytest.approx(1.0)
    assert rates[-1] < 0.01 and max(rates) == pytest.approx(1.0)


def test_a_partial_pass_stops_at_the_scaled_steps_and_eba_starts_at_its_scaled_epoch(small_toy_benchmark, tmp_path):
    from rsitr.app.steps.training import fit
    from rsitr.training.optim import steps_per_epoch

    raw = toy_params_dict(small_toy_benchmark, epochs=7, budget=0.5, batch_size=8)
    raw["paths"]["models"] = str(tmp_path / "models")
    raw["variants"]["ebaker"] = {"method": "ebaker", "options": {"ker": False, "local": False, "drop_epoch": 4,
                                                                  "drop_ratio": 0.5}}
    params = params_from_dict(raw)
    per_pass = steps_per_epoch(60, 8)  # 60 captions at batch 8: 7 steps
    result = fit(params, "ebaker", progress=False)
    total = round(0.5 * 7 * per_pass)  # 24 steps: 3 whole passes and 3 steps of a fourth
    assert result.optimizer_steps == total and len(result.history) == 4
    assert result.data_passes == pytest.approx(total / per_pass)
    assert [round(r["paper_epoch"], 3) for r in result.history] == [round(s / 3.5, 3) for s in (7, 14, 21, 24)]
    eliminated = json.loads((Path(result.checkpoint).parent / "eliminated.json").read_text())
    first = min(record["epoch"] for record in eliminated["records"]) if eliminated["records"] else None
    assert first == 4  # EBA acts from paper epoch 4 (step 14 of 24), inside the second data pass
