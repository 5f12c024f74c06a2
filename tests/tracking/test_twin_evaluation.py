"""The twin diagnostic end to end: evaluation logs ``twin_acc``, the leaderboard shows it.

A tiny toy benchmark (48 single-colour images, 8 in test) with a ``ground_truth.json``
planting two twin pairs in the test split and one across splits (skipped); ``zeroshot``
needs no training. The fast tests record what evaluation logs with a stand-in tracker
and build leaderboard rows from stand-in runs; the ``slow`` one goes through a real
MLflow store (creating its SQLite schema alone takes seconds).
"""

from __future__ import annotations

import re

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from toy_data import make_toy_benchmark, toy_params_dict
from rsitr.config import RsitrParams, params_from_dict
from rsitr.tracking.leaderboard import Leaderboard, MEASURED, _rows_of_run, reference_rows, render_markdown

EXPERIMENT = "rsitr-twins"
TWINS = [
    {"original": "images/40.png", "twin": "images/41.png", "attribute": "colour", "from": "white", "to": "black"},
    {"original": "images/43.png", "twin": "images/42.png", "attribute": "colour", "from": "red", "to": "yellow"},
    {"original": "images/0.png", "twin": "images/44.png", "attribute": "count", "from": 3, "to": 5},  # train/test
]
NAMES = ("twin_acc", "twin_acc_t2i", "twin_acc_i2t", "twin_pairs")
RECALLS = ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR")


def _params(raw: dict[str, Any], **changes: str) -> RsitrParams:
    """``raw`` with ``section__name=value`` changes."""
    raw = json.loads(json.dumps(raw))
    for key, value in changes.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return params_from_dict(raw)


class RecordingTracker:
    """Stands in for ``rsitr.tracking.mlflow_tracking.Tracker``: keeps what evaluation logs."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.status = ""

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        self.metrics.update(values)

    def log_artifact(self, path: Any, folder: str = "") -> None:
        pass

    def set_tags(self, tags: dict[str, Any]) -> None:
        pass

    def end(self, status: str) -> None:
        self.status = status


@pytest.fixture(scope="module")
def twin_toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Raw params of a toy project with planted twins and a published (untracked) zeroshot."""
    from rsitr.app.steps.training import run_train

    root = tmp_path_factory.mktemp("twins")
    make_toy_benchmark(root, n_images=48)  # test split: images 40..47
    (root / "ground_truth.json").write_text(json.dumps({"twins": TWINS}))
    raw = toy_params_dict(root, epochs=1, device="cpu")
    raw.update(synth={"out": str(root)}, eval={"batch_size": 64})
    raw["tracking"]["experiment"] = EXPERIMENT
    run_train(params_from_dict(raw), "zeroshot", track=False, progress=False)
    return raw


def test_evaluation_writes_and_logs_twin_accuracy(twin_toy, monkeypatch) -> None:
    from rsitr.app.steps import evaluation

    tracker = RecordingTracker()
    monkeypatch.setattr(evaluation, "variant_tracker", lambda params, variant: tracker)
    results = evaluation.run_evaluate(params_from_dict(twin_toy), "zeroshot")
    figures = json.loads((Path(twin_toy["paths"]["metrics"]) / "zeroshot" / "toy.json").read_text())
    assert figures == {k: v for k, v in results["toy"].items() if k != "timings"}
    assert figures["twin_pairs"] == 2  # the pair with a train image is not a test-set pair
    assert 0 <= figures["twin_acc_t2i"] <= 100 and 0 <= figures["twin_acc_i2t"] <= 100
    assert figures["twin_acc"] == pytest.approx((figures["twin_acc_t2i"] + figures["twin_acc_i2t"]) / 2)
    assert {f"test.toy.en.{name}": figures[name] for name in NAMES}.items() <= tracker.metrics.items()
    assert tracker.metrics["test.toy.en.mR"] == figures["mR"] and tracker.status == "FINISHED"


@pytest.mark.parametrize("twins", [None, TWINS[2:]], ids=["no-ground-truth", "no-test-pair"])
def test_evaluation_without_twins_skips_the_metric(twin_toy, tmp_path: Path, twins) -> None:
    from rsitr.app.steps.evaluation import run_evaluate

    if twins is not None:
        (tmp_path / "ground_truth.json").write_text(json.dumps({"twins": twins}))
    params = _params(twin_toy, synth__out=str(tmp_path), paths__metrics=str(tmp_path / "metrics"))
    result = run_evaluate(params, "zeroshot", track=False)["toy"]
    written = json.loads((tmp_path / "metrics" / "zeroshot" / "toy.json").read_text())
    assert "mR" in result and not set(NAMES) & (set(result) | set(written))


def _run(variant: str, metrics: dict[str, float]) -> SimpleNamespace:
    """What ``MlflowClient.search_runs`` yields, as far as the leaderboard reads it."""
    return SimpleNamespace(info=SimpleNamespace(run_id=f"{variant}-run-id", run_name=variant),
                           data=SimpleNamespace(tags={"variant": variant, "method": "finetune"}, metrics=metrics))


def test_leaderboard_has_a_twin_acc_column_blank_where_not_measured() -> None:
    recalls = {f"test.synth_rsicd.en.{k}": 40.0 for k in RECALLS}
    twins = {"test.synth_rsicd.en.twin_acc": 61.25, "test.synth_rsicd.en.twin_pairs": 13}
    rows = (_rows_of_run(_run("ebaker", {**recalls, **twins, "test.synth_rsicd.en.c2f.mR": 39.0}))
            + _rows_of_run(_run("finetune", recalls)))
    board = Leaderboard(pd.DataFrame(rows), reference_rows())
    table = board.table().query(f"label == '{MEASURED}'").set_index("model")
    assert table.loc["ebaker", "twin_acc"] == 61.25
    assert pd.isna(table.loc["finetune", "twin_acc"]) and pd.isna(table.loc["ebaker + c2f", "twin_acc"])
    assert list(table.columns).index("twin_acc") == list(table.columns).index("mR") + 1
    markdown = render_markdown(board, uri="sqlite://", experiment=EXPERIMENT, all_runs=False)
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    split = lambda line: [cell.strip() for cell in line.split("|")]  # noqa: E731 - padded cells (to_markdown)
    column = next(split(line) for line in lines if split(line)[1:3] == ["label", "model"]).index("twin acc")
    cells = {split(line)[2]: split(line)[column] for line in lines if split(line)[1] == MEASURED}
    assert cells == {"**ebaker**": "61.25", "**finetune**": "", "**ebaker + c2f**": ""}


def test_leaderboard_shows_eba_precision_and_the_c2f_fine_share() -> None:
    recalls = {f"test.synth_rsicd.en.{k}": 40.0 for k in RECALLS}
    c2f = {f"test.synth_rsicd.en.c2f.{k}": 39.0 for k in RECALLS} | {"test.synth_rsicd.en.c2f.fine_pair_share": 0.0825}
    rows = _rows_of_run(_run("ebaker", {**recalls, **c2f, "eba_precision": 92.5}))
    table = Leaderboard(pd.DataFrame(rows), reference_rows()).table().query(f"label == '{MEASURED}'").set_index("model")
    assert table.loc["ebaker", "eba_precision"] == 92.5 and pd.isna(table.loc["ebaker", "fine_share"])
    assert table.loc["ebaker + c2f", "fine_share"] == pytest.approx(8.25)
    assert pd.isna(table.loc["ebaker + c2f", "eba_precision"])
    markdown = render_markdown(Leaderboard(pd.DataFrame(rows), reference_rows()), uri="sqlite://",
                               experiment=EXPERIMENT, all_runs=False)
    assert re.search(r"\| 92\.50 +\|", markdown) and re.search(r"\| 8\.25 +\|", markdown)  # padded cells


@pytest.mark.slow
def test_twin_accuracy_reaches_mlflow_and_the_leaderboard(twin_toy, tmp_path: Path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    from rsitr.app.steps.evaluation import run_evaluate
    from rsitr.app.steps.leaderboard import run_leaderboard
    from rsitr.app.steps.training import run_train

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment(EXPERIMENT, artifact_location=(tmp_path / "mlruns").as_uri())
    params = _params(twin_toy, tracking__uri=uri, paths__models=str(tmp_path / "models"),
                     paths__metrics=str(tmp_path / "metrics"), paths__reports=str(tmp_path / "reports"))
    run_train(params, "zeroshot", progress=False)
    figures = run_evaluate(params, "zeroshot")["toy"]
    run = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])[0]
    assert {name: run.data.metrics[f"test.toy.en.{name}"] for name in NAMES} == pytest.approx(
        {name: figures[name] for name in NAMES})
    table = pd.read_csv(run_leaderboard(params).csv).set_index("model")
    assert table.loc["zeroshot", "twin_acc"] == pytest.approx(figures["twin_acc"])
