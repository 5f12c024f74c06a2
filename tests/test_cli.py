"""The ``rsitr`` console script: config errors exit 2 with a one-line message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rsitr(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsitr.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_config_show_prints_resolved_overrides():
    result = _rsitr("config", "show", "--format", "json", "--set", "train.epochs=2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["train"]["epochs"] == 2


def test_bad_config_exits_2_naming_key_and_choices():
    for override, expected in [
        ("train.epoch=3", "valid keys of train"),
        ("train.epochs=x", "train.epochs: expected an integer"),
        ("variants.finetune.method=magic", "valid methods: ebaker, finetune, petl, zeroshot"),
    ]:
        result = _rsitr("config", "show", "--set", override)
        assert result.returncode == 2, (override, result.stderr)
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


def test_missing_params_file_is_a_clear_error(tmp_path):
    result = _rsitr("config", "show", "--params", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "not found" in result.stderr
