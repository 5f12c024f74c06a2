"""Fixtures of the Prefect flow tests: the flows module (loaded by path) and a toy project."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


toy = _load("rsitr_tests_toy_project", REPO / "tests" / "tracking" / "toy_project.py")


@pytest.fixture(scope="session")
def flows() -> ModuleType:
    """``rsitr.app.flows``, as ``pipelines/flows.py`` (the file deployments point at) exports it."""
    entry = _load("rsitr_pipelines_flows", REPO / "pipelines" / "flows.py")
    import rsitr.app.flows as module

    assert entry.benchmark is module.benchmark
    return module


@pytest.fixture(scope="module")
def prefect_api():
    """A temporary Prefect API (``prefect_test_harness``: a server process on a fresh SQLite database).

    Starting and stopping one costs about half a minute, so the flow tests of a module share it
    (Prefect's documented fixture pattern); each test keeps its own project, MLflow store and
    result storage, and rsitr's cache keys only hit on a project's own recorded outputs.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def toy_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Params file of a fresh toy project (data, experiment) under ``tmp_path``.

    The flows run in this process, so they train the tests' micro model; 60 images (40 train: 6 steps an
    epoch at batch 32, 10 val, 10 test) are enough to check what the flows do with steps and runs.
    """
    from toy_data import TEST_ARCH

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return toy.make_project(tmp_path, images=60, arch=TEST_ARCH)
