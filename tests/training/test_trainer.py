"""The training loop on a toy benchmark: it learns, it stops on NaN, it resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from toy_data import make_toy_benchmark, toy_params_dict
from rsitr.config import params_from_dict
from rsitr.models.trained import load_checkpoint
from rsitr.app.training import fit
from rsitr.training.trainer import TrainingDiverged
from rsitr.training.optim import build_scheduler


def test_step_schedule_is_pe_rsitr_released_steplr():
    raw = toy_params_dict(Path("/unused"), epochs=45, schedule="step", step_epochs=20, gamma=0.7, warmup_steps=0)
    train = params_from_dict(raw).train
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    scheduler = build_scheduler(optimizer, train, batches_per_epoch=3)
    rates = []
    for _ in range(45 * 3):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    per_epoch = rates[::3]
    assert per_epoch[:20] == pytest.approx([2e-4] * 20)
    assert per_epoch[20:40] == pytest.approx([2e-4 * 0.7] * 20)
    assert per_epoch[40:] == pytest.approx([2e-4 * 0.49] * 5)


def test_gradient_accumulation_is_rejected_with_the_reason():
    from rsitr.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.accumulation_steps: gradient accumulation is not supported.*got 4"):
        params_from_dict(toy_params_dict(Path("/unused"), accumulation_steps=4))


def test_learnable_logit_scale_is_clamped_at_ln_100_after_each_step(toy_benchmark, tmp_path, monkeypatch):
    import math

    from rsitr.models.retrieval_model import RetrievalModel

    raw = toy_params_dict(toy_benchmark, epochs=1)
    raw["paths"]["models"] = str(tmp_path / "models")
    seen = []
    original = RetrievalModel.clamp_logit_scale

    def push_then_clamp(self, *args):  # a temperature driven past the bound is brought back after the step
        with torch.no_grad():
            self.clip.logit_scale.add_(1.0)
        original(self, *args)
        seen.append(float(self.clip.logit_scale.detach()))

    monkeypatch.setattr(RetrievalModel, "clamp_logit_scale", push_then_clamp)
    fit(params_from_dict(raw), "finetune", progress=False)
    assert len(seen) == 25 and max(seen) == pytest.approx(math.log(100.0)) and seen[-1] == pytest.approx(math.log(100))


def test_finetune_learns_and_beats_zeroshot(toy_benchmark, tmp_path):
    raw = toy_params_dict(toy_benchmark, epochs=3)
    raw["paths"]["models"] = str(tmp_path / "models")
    params = params_from_dict(raw)
    result = fit(params, "finetune", progress=False)
    losses = [epoch["epoch_loss"] for epoch in result.history]
    assert losses[-1] < losses[0] * 0.8, losses
    assert result.best_val_mR > 40.0  # 6 colours, 20 val images: chance is far lower
    state = load_checkpoint(result.checkpoint)
    assert state["variant"] == "finetune" and state["base"]["arch"] == "rsitr-tiny"


def test_nan_loss_stops_with_clear_message_and_keeps_last_checkpoint(toy_benchmark, tmp_path, monkeypatch):
    raw = toy_params_dict(toy_benchmark, epochs=2)
    raw["paths"]["models"] = str(tmp_path / "models")
    params = params_from_dict(raw)
    from rsitr.losses import infonce

    calls = {"n": 0}
    original = infonce.symmetric_infonce

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 26 else loss  # epoch 1 (400 captions / 16 = 25 steps) is fine

    monkeypatch.setattr(infonce, "symmetric_infonce", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2.*last good epoch \(1\).*--resume --resume-lr"):
        fit(params, "finetune", progress=False)
    assert load_checkpoint(tmp_path / "models" / "finetune" / "staging" / "last.pt")["epoch"] == 1


def _train_command(params_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rsitr.cli", "train", "--params", str(params_path), "--variant", "finetune",
            "--no-track", *extra]


def test_sigkill_during_epoch_2_then_resume_matches_uninterrupted_run(tmp_path):
    data = make_toy_benchmark(tmp_path / "data", n_images=96)
    results = {}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("straight", "killed"):
        raw = toy_params_dict(data, epochs=3)
        raw["paths"]["models"] = str(tmp_path / name / "models")
        params_path = tmp_path / name / "params.yaml"
        params_path.parent.mkdir(parents=True)
        params_path.write_text(yaml.safe_dump(raw))
        if name == "killed":
            process = subprocess.Popen(_train_command(params_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, env=env)
            for line in process.stdout:  # wait until epoch 1 is checkpointed, then kill mid-epoch 2
                if "epoch 1/3:" in line and "val mR" in line:  # printed after last.pt is written
                    break
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            assert process.returncode == -signal.SIGKILL
            assert load_checkpoint(tmp_path / name / "models" / "finetune" / "staging" / "last.pt")["epoch"] == 1
            command = _train_command(params_path, "--resume")
        else:
            command = _train_command(params_path)
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        summary = json.loads((tmp_path / name / "models" / "finetune" / "train.json").read_text())
        results[name] = summary
        if name == "killed":
            assert "resuming finetune" in done.stdout
    assert _same_except_timing(results["killed"]["final"], results["straight"]["final"])
    straight = load_checkpoint(tmp_path / "straight" / "models" / "finetune" / "staging" / "last.pt")["model"]
    resumed = load_checkpoint(tmp_path / "killed" / "models" / "finetune" / "staging" / "last.pt")["model"]
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def _same_except_timing(a: dict, b: dict) -> bool:
    timing = {"epoch_seconds"}
    return {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
