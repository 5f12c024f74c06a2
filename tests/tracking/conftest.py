"""Fixtures of the registry and leaderboard tests: one trained toy project per session.

``trained_toy`` trains (1 epoch) and evaluates ``finetune`` and ``zeroshot`` on the toy
dataset into a temporary SQLite tracking store (``trained_toy_stock``: the same with rsitr-tiny); tests that change the registry use their
own ``tracking.model_prefix`` so they never see each other's models.
"""

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
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("toy_project.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


toy = _toy_module()


@pytest.fixture(autouse=True)
def _no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def _trained_project(root: Path, arch: str) -> Path:
    from rsitr.config import load_params
    from rsitr.app.steps.evaluation import run_evaluate
    from rsitr.app.steps.training import run_train

    params_path = toy.make_project(root, arch=arch)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        params = load_params(params_path)
        for variant in ("finetune", "zeroshot"):
            run_train(params, variant, progress=False)
            run_evaluate(params, variant)
    return params_path


@pytest.fixture(scope="session")
def trained_toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Params file of a toy project with finetune and zeroshot trained, evaluated and tracked.

    The model is the tests' micro architecture (``toy_data.TEST_ARCH``): a process that loads it
    registers ``tests/model_configs`` first.
    """
    from toy_data import TEST_ARCH

    return _trained_project(tmp_path_factory.mktemp("toy"), TEST_ARCH)


@pytest.fixture(scope="session")
def trained_toy_stock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same project with rsitr's own ``rsitr-tiny``, for a model served by a process the test cannot
    prepare (``mlflow models serve``)."""
    return _trained_project(tmp_path_factory.mktemp("toy-stock"), "rsitr-tiny")


@pytest.fixture
def rsitr_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run ``rsitr.cli.main(argv)`` with the tracking subcommands; returns (exit code, stdout, stderr)."""
    from rsitr import cli

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def make_gallery_index():
    """``build(params, root, count)``: a gallery of the toy images 200.. and its index under ``root``."""
    import shutil

    from rsitr.app.serving.gallery import GalleryBuild, build_gallery_index

    def build(params, root: Path, count: int) -> Path:
        (root / "gallery").mkdir()
        for i in range(200, 200 + count):
            shutil.copy(Path(params.paths.data) / "img" / f"{i}.png", root / "gallery" / f"{i}.png")
        build_gallery_index(params, "finetune", root / "gallery", root / "index", build=GalleryBuild(progress=False))
        return root / "index"

    return build
