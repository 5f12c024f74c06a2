"""Fixtures of the report tests: the toy project with an untracked zero-shot checkpoint."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def _toy_module():
    name = "rsitr_tests_toy_project"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "tracking" / "toy_project.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


toy = _toy_module()


@pytest.fixture(scope="session")
def zeroshot_toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Params file of a toy project whose ``zeroshot`` checkpoint exists (no MLflow run)."""
    from rsitr.config import load_params
    from rsitr.app.steps.training import run_train

    root = tmp_path_factory.mktemp("toy-report")
    toy.make_toy_dataset(root / "data")
    params_path = toy.write_params(root)
    run_train(load_params(params_path), "zeroshot", track=False, progress=False)
    return params_path
