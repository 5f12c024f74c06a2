"""The ``benchmark`` flow end to end under ``prefect_test_harness``, and its building blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rsitr.config import load_params
from rsitr.errors import ConfigError, DataError, TrackingError


def test_only_transient_failures_are_retried(flows) -> None:
    assert flows.is_transient(TrackingError("MLflow tracking server http://x is unreachable"))
    assert flows.is_transient(ConnectionResetError("reset by peer"))
    assert flows.is_transient(TimeoutError())
    assert flows.is_transient(RuntimeError("(sqlite3.OperationalError) database is locked"))
    assert not flows.is_transient(ConfigError("unknown key"))
    assert not flows.is_transient(DataError("cannot read image"))
    assert not flows.is_transient(FileNotFoundError("params.yaml"))
    assert not flows.is_transient(ValueError("bad shape"))


def test_datasets_become_train_and_test_set_overrides(flows) -> None:
    assert flows.effective_overrides(None, None) == []
    assert flows.effective_overrides(["train.epochs=2"], ["a", "b"]) == [
        "train.epochs=2", "train.datasets=[a,b]", "eval.test_sets=[a,b]"]


def test_benchmark_flow_end_to_end(flows, prefect_api, toy_project: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    params = load_params(toy_project)
    board_path = Path(params.paths.reports) / "leaderboard.md"
    broken = ["variants.broken.method=finetune", "variants.broken.train.init_from=/nonexistent/best.pt"]
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: tmp_path / "prefect-results"}):
        with pytest.raises(ConfigError, match="unknown variant 'nosuch'"):
            flows.benchmark(variants=["nosuch"], params_path=str(toy_project))
        # a failing variant does not stop the others; the leaderboard is still written, then the flow fails
        with pytest.raises(RuntimeError, match=r"variants failed: broken \(train: .*nonexistent"):
            flows.benchmark(variants=["broken", "zeroshot"], overrides=broken, params_path=str(toy_project),
                            register_models=False)
        assert "**zeroshot**" in board_path.read_text() and "broken" not in board_path.read_text()

        result = flows.benchmark(params_path=str(toy_project), datasets=["toy"], overrides=["train.epochs=1"],
                                 concurrency=2)
        decision = flows.promote_champion(variant="finetune", params_path=str(toy_project))

    assert set(result["variants"]) == {"zeroshot", "finetune"}
    client = MlflowClient(tracking_uri=params.tracking.uri, registry_uri=params.tracking.uri)
    for variant, outcome in result["variants"].items():
        run_id = outcome["train"]["run_id"]
        assert run_id == json.loads((Path(params.paths.models) / variant / "run.json").read_text())["run_id"]
        assert 0 <= outcome["evaluate"]["metrics"]["toy"]["mR"] <= 100
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and "test.toy.en.mR" in run.data.metrics
        assert run.data.tags["data.version"] == outcome["train"]["data_version"]  # the DVC data version
        assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.name"]  # MLflow's context tags
        assert run.data.tags["prefect.flow_run_id"] and run.data.tags["prefect.task_run_id"]  # the Prefect run behind it
        assert run.info.run_name.startswith(f"{variant}-") and run.info.run_name != variant  # unique per training
        assert [d.dataset.digest for d in run.inputs.dataset_inputs] == [outcome["train"]["data_version"][:36]]
        assert outcome["register"]["name"] == f"rsitr-{variant}"
        assert client.get_model_version(f"rsitr-{variant}", outcome["register"]["version"]).run_id == run_id
    assert (Path(params.paths.models) / "keywords" / "report.json").is_file()
    board = pd.read_csv(result["leaderboard"]["csv"])
    assert sorted(board.query("label == 'measured'")["model"]) == ["finetune", "zeroshot"]
    assert (board["label"] == "reported").sum() == result["leaderboard"]["reported_rows"] > 0
    assert any((tmp_path / "prefect-results").iterdir())  # task results were persisted
    assert decision["promoted"] and decision["challenger"] == "1" and "no champion yet" in decision["message"]
    assert str(client.get_model_version_by_alias("rsitr-finetune", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("rsitr-zeroshot", "challenger").version) == "1"
    flow_run_id = client.get_run(result["variants"]["finetune"]["train"]["run_id"]).data.tags["prefect.flow_run_id"]
    messages, artifacts = _prefect_view(flow_run_id)
    assert any(m.startswith("finetune pass 1/1 (paper epoch 1.00 of 1): loss") for m in messages)  # rsitr.training.trainer's log line
    assert "**finetune**" in artifacts["rsitr-leaderboard"]  # the leaderboard, as a markdown artifact
    assert result["variants"]["finetune"]["train"]["run_id"] in artifacts["rsitr-mlflow-runs"]
    experiment_id = client.get_experiment_by_name(params.tracking.experiment).experiment_id
    logged = client.search_logged_models(experiment_ids=[experiment_id])  # this project's store, not the global URI
    assert [m.name for m in logged] == ["model", "model"]  # one logged model per trained variant
    assert all("test.toy.en.mR" in {x.key for x in client.get_logged_model(m.model_id).metrics} for m in logged)
    assert {m.source_run_id for m in logged} == {result["variants"][v]["train"]["run_id"] for v in ("zeroshot", "finetune")}


def _prefect_view(flow_run_id: str) -> tuple[list[str], dict[str, str]]:
    """The log messages of a flow run and the latest artifacts by key (as the Prefect UI shows them)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)])))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(flow_run_id)])))
    return [log.message for log in logs], {a.key: str(a.data) for a in artifacts}


def _trained(result: dict) -> dict[str, bool]:
    """Which variants' train step did work (not skipped) in a benchmark result."""
    return {v: not o["train"].get("skipped", False) for v, o in result["variants"].items()}


def test_a_second_run_trains_nothing_and_one_variants_epochs_retrain_only_it(flows, prefect_api, toy_project: Path,
                                                                             tmp_path: Path) -> None:
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    kwargs = dict(params_path=str(toy_project), register_models=False, overrides=["train.epochs=1"])
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: tmp_path / "prefect-results"}):
        first = flows.benchmark(**kwargs)
        second = flows.benchmark(**kwargs)
        changed = flows.benchmark(**{**kwargs, "overrides": ["train.epochs=1", "variants.finetune.train.epochs=2"]})
    assert _trained(first) == {"zeroshot": True, "finetune": True}
    assert _trained(second) == {"zeroshot": False, "finetune": False}
    assert second["variants"]["finetune"]["evaluate"]["metrics"] == first["variants"]["finetune"]["evaluate"]["metrics"]
    assert _trained(changed) == {"zeroshot": False, "finetune": True}
    assert changed["variants"]["finetune"]["train"]["run_id"] != first["variants"]["finetune"]["train"]["run_id"]


@pytest.mark.slow
def test_train_task_launches_torchrun_when_asked_for_several_processes(flows, toy_project):
    """The deployment parameter nproc_per_node runs the same training data-parallel (2 gloo ranks here)."""
    import json

    from rsitr.config import load_params

    overrides = ["train.batch_size=16", "model.arch=rsitr-tiny"]  # torchrun's processes know rsitr's own models
    record = flows.train_task.fn(str(toy_project), overrides, "finetune", nproc_per_node=2)
    params = load_params(toy_project, overrides)
    model_folder = Path(params.paths.models) / "finetune"
    assert json.loads((model_folder / "run.json").read_text())["run_id"] == record["run_id"]
    assert (model_folder / "best.pt").is_file()
    assert "--nproc_per_node" in flows.torchrun_command("p.yaml", ["a=1"], "petl", 4)


def test_parents_train_before_the_variants_that_start_from_them(flows, toy_project: Path):
    from rsitr.config import load_params

    params = load_params(toy_project, ["variants.arabic.method=finetune",
                                       "variants.arabic.train.init_from_variant=finetune"])
    assert flows.parents_first(params, ["arabic", "zeroshot", "finetune"]) == ["finetune", "arabic", "zeroshot"]
    assert flows.parents_first(params, ["arabic", "zeroshot"]) == ["arabic", "zeroshot"]  # parent already trained
