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

from toy_data import RUN_WITH_TEST_MODELS, TEST_ARCH, toy_params_dict
from rsitr.config import params_from_dict
from rsitr.models.trained import load_checkpoint
from rsitr.app.steps.training import fit
from rsitr.training.trainer import TrainingDiverged
from rsitr.training.optim import build_scheduler
from rsitr.training.schedule import TrainSchedule


def test_step_schedule_is_pe_rsitr_released_steplr():
    raw = toy_params_dict(Path("/unused"), epochs=45, schedule="step", step_epochs=20, gamma=0.7, warmup_share=0.0)
    train = params_from_dict(raw).train
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    scheduler = build_scheduler(optimizer, train, TrainSchedule.of(train.epochs, 1.0, steps_per_pass=3))
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


def test_learnable_logit_scale_is_clamped_at_ln_100_after_each_step(small_toy_benchmark, tmp_path, monkeypatch):
    import math

    from rsitr.models.retrieval_model import RetrievalModel

    raw = toy_params_dict(small_toy_benchmark, epochs=1)
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
    assert len(seen) == 3 and max(seen) == pytest.approx(math.log(100.0)) and seen[-1] == pytest.approx(math.log(100))
    # 60 captions / 16 = 3 steps, each pushed past ln 100 and clamped back


def _untrained_val_mR(params) -> float:
    """Validation mR of the model before any step (a finetune run starts from exactly the zero-shot weights)."""
    from rsitr.app.core.paths import ProjectPaths
    from rsitr.data.images import ImageLoader
    from rsitr.data.manifest import read_manifest, select_split
    from rsitr.models import build_model
    from rsitr.retrieval.evaluate import evaluate_split

    model = build_model(params, "zeroshot")
    val = select_split(read_manifest(ProjectPaths.of(params).manifest), "val")
    loader = ImageLoader(model.image_size, model.mean, model.std)
    return evaluate_split(model, val, loader, params.eval.batch_size, torch.device("cpu"))["metrics"]["mR"]


def test_finetune_learns_and_beats_zeroshot(toy_benchmark, tmp_path):
    raw = toy_params_dict(toy_benchmark, epochs=2, batch_size=32)  # 400 training captions: 12 steps an epoch
    raw["paths"]["models"] = str(tmp_path / "models")
    params = params_from_dict(raw)
    result = fit(params, "finetune", progress=False)
    losses = [epoch["epoch_loss"] for epoch in result.history]
    assert losses[-1] < losses[0] * 0.8, losses
    # 6 colours, 20 val images (100 captions): the untrained model scores about 20 (18-22 over seeds 0-2)
    zeroshot = _untrained_val_mR(params)
    assert zeroshot < 35.0, zeroshot
    assert result.best_val_mR > 50.0 and result.best_val_mR > zeroshot + 25.0, (result.best_val_mR, zeroshot)
    state = load_checkpoint(result.checkpoint)
    assert state["variant"] == "finetune" and state["base"]["arch"] == TEST_ARCH


def test_nan_loss_stops_with_clear_message_and_keeps_last_checkpoint(small_toy_benchmark, tmp_path, monkeypatch):
    raw = toy_params_dict(small_toy_benchmark, epochs=2)
    raw["paths"]["models"] = str(tmp_path / "models")
    params = params_from_dict(raw)
    from rsitr.losses import infonce

    calls = {"n": 0}
    original = infonce.symmetric_infonce

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * float("nan") if calls["n"] > 4 else loss  # epoch 1 (60 captions / 16 = 3 steps) is fine

    monkeypatch.setattr(infonce, "symmetric_infonce", poisoned)
    with pytest.raises(TrainingDiverged,
                       match=r"loss became nan at data pass 2, step 1 .*last good pass \(1\).*--resume --resume-lr"):
        fit(params, "finetune", progress=False)
    assert load_checkpoint(tmp_path / "models" / "finetune" / "staging" / "last.pt")["epoch"] == 1


def _train_command(params_path: Path, *extra: str) -> list[str]:
    """``python -m rsitr.cli train ...`` in a real process that knows the test architecture."""
    return [sys.executable, str(RUN_WITH_TEST_MODELS), "rsitr.cli", "train", "--params", str(params_path),
            "--variant", "finetune", "--no-track", *extra]


def _write_params(root: Path, data: Path) -> Path:
    raw = toy_params_dict(data, epochs=3)
    raw["paths"]["models"] = str(root / "models")
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    return root / "params.yaml"


def test_sigkill_during_epoch_2_then_resume_matches_uninterrupted_run(small_toy_benchmark, tmp_path):
    # 3 epochs of 3 steps; the killed run is held after step 1 of epoch 2 (its weights and optimizer have moved
    # past last.pt of epoch 1) and killed there, so the resumed run must redo that step exactly
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}  # one intra-op thread in each run
    straight_params = _write_params(tmp_path / "straight", small_toy_benchmark)
    killed_params = _write_params(tmp_path / "killed", small_toy_benchmark)
    # the uninterrupted run trains meanwhile, in its own process (same code path, same thread count)
    with (tmp_path / "straight.log").open("w") as straight_log:
        straight = subprocess.Popen(_train_command(straight_params), stdout=straight_log, stderr=subprocess.STDOUT,
                                    text=True, env=env)
        try:
            process = subprocess.Popen(_train_command(killed_params), stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True,
                                       env={**env, "RSITR_TEST_HOLD_AFTER": "2:1"})
            output = []
            for line in process.stdout:  # last.pt of epoch 1 is written before epoch 2 starts
                output.append(line)
                if line.startswith("holding after epoch 2 step 1"):
                    break
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            assert process.returncode == -signal.SIGKILL, "".join(output)[-2000:]
            assert any("pass 1/3 (" in line and "val mR" in line for line in output), "".join(output)[-2000:]
            assert load_checkpoint(tmp_path / "killed" / "models" / "finetune" / "staging" / "last.pt")["epoch"] == 1
            # a fresh process, as the other two: bit-identical weights need the same process state in each run
            resumed_run = subprocess.run(_train_command(killed_params, "--resume"), capture_output=True, text=True,
                                         timeout=600, env=env)
            assert resumed_run.returncode == 0, resumed_run.stderr[-2000:]
            assert "resuming finetune" in resumed_run.stderr  # a log line of rsitr.training (stderr)
            assert straight.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-2000:]
        finally:
            if straight.poll() is None:
                straight.kill()
                straight.wait()
    results = {name: json.loads((tmp_path / name / "models" / "finetune" / "train.json").read_text())
               for name in ("straight", "killed")}
    assert results["straight"]["final"]["epoch"] == 3
    assert _same_except_timing(results["killed"]["final"], results["straight"]["final"])
    straight_state = load_checkpoint(tmp_path / "straight" / "models" / "finetune" / "staging" / "last.pt")
    resumed_state = load_checkpoint(tmp_path / "killed" / "models" / "finetune" / "staging" / "last.pt")
    assert straight_state["global_step"] == resumed_state["global_step"] == 9
    assert all(torch.equal(straight_state["model"][k], resumed_state["model"][k]) for k in straight_state["model"])


def _same_except_timing(a: dict, b: dict) -> bool:
    timing = {"epoch_seconds"}
    return {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}


def test_optimizer_steps_are_epochs_times_steps_per_epoch_and_a_childs_own(small_toy_benchmark, tmp_path):
    from rsitr.app.steps.training import run_train
    from rsitr.training.optim import steps_per_epoch

    raw = toy_params_dict(small_toy_benchmark, epochs=2)
    raw["paths"]["models"] = str(tmp_path / "models")
    summary = run_train(params_from_dict(raw), "finetune", track=False, progress=False)
    assert summary["optimizer_steps"] == 2 * steps_per_epoch(60, 16) == 6  # 60 captions at batch 16, 2 epochs
    stored = json.loads((tmp_path / "models" / "finetune" / "train.json").read_text())
    assert stored["optimizer_steps"] == 6
    assert [point["epoch"] for point in stored["val_curve"]] == [1, 2]
    assert stored["val_curve"][-1]["val_mR"] == pytest.approx(stored["final"]["val_mR"])
    # a variant started from finetune's checkpoint counts its own steps, not its parent's too
    raw["variants"]["second"] = {"method": "finetune", "train": {"init_from_variant": "finetune", "epochs": 1}}
    assert fit(params_from_dict(raw), "second", progress=False).optimizer_steps == 3
    zeroshot = run_train(params_from_dict(raw), "zeroshot", track=False, progress=False)
    assert zeroshot["optimizer_steps"] == 0 and zeroshot["val_curve"] == []
