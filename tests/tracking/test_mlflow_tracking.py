"""Tracking fails fast on an unreachable server, before any training, and names the fix."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rsitr.errors import TrackingError
from rsitr.tracking.mlflow_tracking import ensure_reachable, tracking_uri

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket closes


def test_unreachable_server_fails_in_seconds_with_the_fix():
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    with pytest.raises(TrackingError, match="unreachable.*mlflow server.*MLFLOW_TRACKING_URI"):
        ensure_reachable(uri, timeout_s=3)
    assert time.perf_counter() - start < 10


def test_environment_variable_wins_over_params(monkeypatch):
    from rsitr.config import load_params

    params = load_params(REPO / "params.yaml")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(params) == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert tracking_uri(params) == "http://tracking.example:5000"


def test_train_command_stops_before_training_when_tracking_is_down(tmp_path):
    """No checkpoint is written and nothing is lost: the error comes before any work."""
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_closed_port()}", "PATH": "/usr/bin:/bin"}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "rsitr.cli", "train", "--variant", "finetune", "--set", f"paths.models={tmp_path}/m"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "unreachable" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()
    assert time.perf_counter() - start < 60


def test_fluent_uri_leaves_no_tracking_uri_behind(monkeypatch, tmp_path):
    """mlflow.set_tracking_uri writes MLFLOW_TRACKING_URI, which rsitr lets win over params: restored after."""
    import os

    import mlflow

    from rsitr.tracking.mlflow_tracking import fluent_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "sqlite:///kept.db")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    before = mlflow.get_tracking_uri()
    with fluent_uri(other):
        assert mlflow.get_tracking_uri() == other == os.environ["MLFLOW_TRACKING_URI"]
        assert mlflow.get_registry_uri() == other
    assert "MLFLOW_TRACKING_URI" not in os.environ and os.environ["MLFLOW_REGISTRY_URI"] == "sqlite:///kept.db"
    assert mlflow.get_tracking_uri() == before
    monkeypatch.delenv("MLFLOW_REGISTRY_URI")
    monkeypatch.chdir(tmp_path)  # nothing pinned: the defaults still follow the working directory
    assert mlflow.get_registry_uri() == mlflow.get_tracking_uri() != before


def test_concurrent_fluent_blocks_take_turns(tmp_path):
    """Registrations run in a flow's task threads: one thread's restore must not pull the URI from under another."""
    import threading

    import mlflow

    from rsitr.tracking.mlflow_tracking import fluent_uri

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    first_inside, second_started, first_done = threading.Event(), threading.Event(), threading.Event()
    seen: list[str] = []

    def first() -> None:
        with fluent_uri(uri):
            first_inside.set()
            second_started.wait(10)
        first_done.set()

    def second() -> None:
        first_inside.wait(10)
        second_started.set()
        with fluent_uri(uri):
            first_done.wait(10)  # the first block has restored the URIs by now
            seen.append(mlflow.get_tracking_uri())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen == [uri]
