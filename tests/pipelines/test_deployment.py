"""Slow: the deployments of ``pipelines/prefect.yaml`` on a real ``prefect server`` and a process worker.

Runs what pipelines/README.md tells a user to do, on localhost: start a server, create the
``gpu`` process pool, ``prefect deploy --all``, start ``prefect worker start --pool gpu``,
then run the ``benchmark``, ``promote`` and ``variant`` deployments on the toy project and
watch them complete. Everything (Prefect home, MLflow store, outputs) lives under ``tmp_path``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from rsitr.config import load_params

REPO = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """SIGINT (a worker's clean shutdown), then SIGKILL; only the process this test started."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


@pytest.fixture
def prefect_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A running ``prefect server`` on a free port; yields the environment that talks to it."""
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                             env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(2)
        yield env
    finally:
        _stop(server)
        log.close()


def _prefect(env: dict[str, str], *args: str, timeout: int = 300) -> str:
    done = subprocess.run([*PREFECT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_deployments_run_on_a_process_worker(prefect_env: dict[str, str], tmp_path: Path) -> None:
    from rsitr_tests_toy_project import make_project  # loaded by conftest

    params_path = make_project(tmp_path / "project")
    params = load_params(params_path)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    env = {**prefect_env, "RSITR_HOME": str(REPO), "RSITR_COMMIT": commit, "MLFLOW_TRACKING_URI": params.tracking.uri}

    _prefect(env, "work-pool", "create", "gpu", "--type", "process")
    deployed = _prefect(env, "--no-prompt", "deploy", "--all", "--prefect-file", "pipelines/prefect.yaml")
    for name in ("benchmark/benchmark", "variant/variant", "promote/promote"):
        assert f"Deployment '{name}' successfully created" in deployed

    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen([*PREFECT, "worker", "start", "--pool", "gpu", "--limit", "1"], env=env, cwd=tmp_path,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        run = _prefect(env, "deployment", "run", "benchmark/benchmark", "--params",
                       f'{{"params_path": "{params_path}", "overrides": ["train.epochs=1"]}}',
                       "--watch", "--watch-timeout", "500", timeout=540)
        assert "Flow run finished successfully in 'Completed'" in run
        promoted = _prefect(env, "deployment", "run", "promote/promote", "--params",
                            f'{{"params_path": "{params_path}", "variant": "finetune"}}', "--watch", timeout=300)
        assert "Flow run finished successfully in 'Completed'" in promoted
        single = _prefect(env, "deployment", "run", "variant/variant", "--params",
                          f'{{"params_path": "{params_path}", "variant": "zeroshot"}}', "--watch", timeout=300)
        assert "Flow run finished successfully in 'Completed'" in single
    finally:
        _stop(worker)
        log.close()
    worker_log = (tmp_path / "worker.log").read_text()
    assert "rsitr-finetune v1 promoted to champion (no champion yet)" in worker_log

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=params.tracking.uri, registry_uri=params.tracking.uri)
    assert str(client.get_model_version_by_alias("rsitr-finetune", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("rsitr-zeroshot", "challenger").version) == "2"  # variant run
    board = pd.read_csv(Path(params.paths.reports) / "leaderboard.csv")
    assert sorted(board.query("label == 'measured'")["model"]) == ["finetune", "zeroshot"]
