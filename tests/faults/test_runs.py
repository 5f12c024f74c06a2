"""Trials 1, 2 and 8: interrupted, diverged and terminated trainings never publish wrong weights.

1. A re-run without ``--resume`` that is killed leaves the published ``best.pt`` and ``run.json``
   exactly as the finished run left them, and no temporary file survives the next start.
2. A NaN gives advice that works: with no finished epoch it names no checkpoint; after one it
   names ``--resume --resume-lr``, and resuming with a new learning rate uses it.
8. SIGTERM marks the MLflow run KILLED and keeps ``last.pt``; ``--resume`` continues that run.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ENV
from toy_data import RUN_WITH_TEST_MODELS
from rsitr.app.core.paths import ProjectPaths
from rsitr.app.core.runs import published_checkpoint, read_run_record
from rsitr.app.steps.training import fit, run_train
from rsitr.config import load_params
from rsitr.models.trained import load_checkpoint
from rsitr.training.trainer import TrainingDiverged


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _start_and_stop_after_epoch(params_path: Path, stop: signal.Signals, *extra: str) -> subprocess.Popen:
    """``rsitr train`` in a real process, stopped with ``stop`` in epoch 2 (after its first step)."""
    process = subprocess.Popen([sys.executable, str(RUN_WITH_TEST_MODELS), "rsitr.cli", "train", "--params",
                                str(params_path), "--variant", "finetune", *extra], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**ENV, "RSITR_TEST_HOLD_AFTER": "2:1"})
    lines = []
    for line in process.stdout:  # last.pt of epoch 1 is written before epoch 2 starts; the run holds there
        lines.append(line)
        if line.startswith("holding after epoch 2 step 1"):
            break
    assert any("pass 1/" in line and "val mR" in line for line in lines), "".join(lines)[-2000:]
    process.send_signal(stop)
    process.communicate(timeout=120)
    return process


def test_a_killed_rerun_changes_nothing_that_is_published(project: Path) -> None:
    params = load_params(project)
    run_train(params, "finetune", track=False, progress=False)
    paths = ProjectPaths.of(params)
    best, record = paths.best_checkpoint("finetune"), paths.run_record("finetune")
    before = (_sha(best), record.read_text())
    longer = project.with_name("longer.yaml")
    raw = yaml.safe_load(project.read_text())
    raw["train"]["epochs"] = 3
    longer.write_text(yaml.safe_dump(raw))
    killed = _start_and_stop_after_epoch(longer, signal.SIGKILL, "--no-track")
    assert killed.returncode == -signal.SIGKILL
    assert (_sha(best), record.read_text()) == before  # the killed run published nothing
    assert published_checkpoint(params, "finetune") == best  # and the published pair still agrees
    stale = paths.staging_dir("finetune") / ".last.pt.tmp-99999"
    stale.write_bytes(b"")  # what a kill during the last.pt write leaves
    run_train(load_params(longer), "finetune", track=False, progress=False, resume=True)
    assert not stale.exists()
    assert load_checkpoint(best)["epoch"] == load_checkpoint(paths.last_checkpoint("finetune"))["best_epoch"]


def _poison_after(monkeypatch: pytest.MonkeyPatch, calls_ok: int) -> None:
    from rsitr.losses import infonce

    original, calls = infonce.symmetric_infonce, {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = original(*args, **kwargs)
        return loss * float("nan") if calls["n"] > calls_ok else loss

    monkeypatch.setattr(infonce, "symmetric_infonce", poisoned)


def test_nan_advice_names_only_what_exists_and_resume_lr_works(project: Path, monkeypatch) -> None:
    params = load_params(project, ["train.epochs=2"])
    with monkeypatch.context() as patch:
        _poison_after(patch, 0)
        with pytest.raises(TrainingDiverged) as first:
            fit(params, "finetune", progress=False)
    assert "no data pass finished" in str(first.value) and "last.pt" not in str(first.value)
    with monkeypatch.context() as patch:
        _poison_after(patch, 7)  # epoch 1 (7 steps: 24 train images x 5 captions, batch 16) is fine
        with pytest.raises(TrainingDiverged) as second:
            fit(params, "finetune", progress=False)
    assert "--resume --resume-lr" in str(second.value) and "pass (1)" in str(second.value)
    result = fit(params, "finetune", progress=False, resume=True, resume_lr=1e-5)
    state = load_checkpoint(result.checkpoint.replace("best.pt", "last.pt"))
    assert state["epoch"] == 2
    assert all(group["initial_lr"] == pytest.approx(1e-5) for group in state["optimizer"]["param_groups"])


def test_sigterm_marks_the_run_killed_keeps_last_pt_and_resume_continues_it(project: Path) -> None:
    from mlflow.tracking import MlflowClient

    longer = project.with_name("three.yaml")
    raw = yaml.safe_load(project.read_text())
    raw["train"]["epochs"] = 3
    longer.write_text(yaml.safe_dump(raw))
    stopped = _start_and_stop_after_epoch(longer, signal.SIGTERM)
    assert stopped.returncode == 143
    params = load_params(longer)
    paths = ProjectPaths.of(params)
    assert load_checkpoint(paths.last_checkpoint("finetune"))["epoch"] == 1
    client = MlflowClient(params.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name(params.tracking.experiment).experiment_id])
    assert [r.info.status for r in runs] == ["KILLED"]
    run_train(params, "finetune", progress=False, resume=True)
    runs = client.search_runs([client.get_experiment_by_name(params.tracking.experiment).experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the same run, continued
    assert read_run_record(params, "finetune").run_id == runs[0].info.run_id
    history = client.get_metric_history(runs[0].info.run_id, "val_mR")
    assert sorted(m.step for m in history) == [1, 2, 3]  # one run holds every epoch
