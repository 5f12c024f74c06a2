"""Fixtures of the fault trials: a tiny trainable project and the ``rsitr`` command in a subprocess."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from toy_data import make_toy_benchmark, migrated_tracking_db, toy_params_dict

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}


def write_project(root: Path, *, epochs: int = 1, n_images: int = 36, **train: object) -> Path:
    """Toy data + params (tiny model, CPU, SQLite tracking under ``root``); returns the params file."""
    data = make_toy_benchmark(root / "data", n_images=n_images)
    raw = toy_params_dict(data, epochs=epochs, device="cpu", **train)
    raw["paths"]["models"] = str(root / "models")
    raw["tracking"] = {"uri": migrated_tracking_db(root / "mlflow.db"), "connect_timeout_s": 2.0}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def rsitr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``rsitr ARGS`` in this process (the same ``main`` the console script runs), output captured.

    In-process keeps the trials fast; the trials that kill or signal a run start a real process.
    """
    from rsitr.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["rsitr", *args], code, out.getvalue(), err.getvalue())


def one_line_error(done: subprocess.CompletedProcess, code: int = 2) -> str:
    """The process failed with ``code`` and said so in exactly one line, without a traceback."""
    lines = [line for line in done.stderr.splitlines() if line.startswith("rsitr: error")]
    assert done.returncode == code, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return write_project(tmp_path)
