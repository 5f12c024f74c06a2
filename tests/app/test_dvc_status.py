"""``dvc status`` reacts to every data param, and to a dataset added under data/raw/.

A throw-away DVC project with this repository's ``dvc.yaml`` and sources and a tiny
``params.yaml``: after ``dvc repro``, changing one value marks exactly the stage that
reads it; a dataset added under ``data/raw/<name>`` and listed in params re-runs ingest,
and so does a later edit of its files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _run(root: Path, *command: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def _stale(root: Path) -> set[str]:
    return set(json.loads(_run(root, "dvc", "status", "--json") or "{}"))


def _params(root: Path) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text())


def _write_params(root: Path, params: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dvc", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("dvc is not installed beside this Python")
    root = tmp_path_factory.mktemp("dvc_status")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synth"]["images"] = 40
    params["synth_corpus"].update(images=8, shard_size=4, workers=1)
    params["dedup"]["cache"] = str(root / "phash.json")
    _write_params(root, params)
    _run(root, "git", "init", "-q")
    _run(root, "dvc", "init", "-q")
    _run(root, "dvc", "repro", "-q")
    assert _stale(root) == set()
    return root


@pytest.mark.parametrize(("key", "value", "stage"), [
    ("synth.images", 41, "synth"),
    ("dedup.max_distance", 3, "dedup"),
    ("split.seed", 1, "split"),
    ("ingest.strict", True, "ingest"),
    ("synth_corpus.seed", 2, "synth_corpus"),
])
def test_changing_a_data_param_marks_exactly_its_stage(project: Path, key: str, value: object, stage: str) -> None:
    original = _params(project)
    changed = yaml.safe_load(yaml.safe_dump(original))
    section, name = key.split(".")
    changed[section][name] = value
    _write_params(project, changed)
    try:
        assert _stale(project) == {stage}
    finally:
        _write_params(project, original)
    assert _stale(project) == set()


def test_a_dataset_added_under_data_raw_reruns_ingest(project: Path) -> None:
    extra = project / "data" / "raw" / "extra"
    shutil.copytree(project / "data" / "raw" / "synth" / "synth_sydney", extra)
    params = _params(project)
    params["datasets"].append({"name": "extra", "format": "karpathy", "root": "data/raw/extra",
                               "images": "data/raw/extra/images"})
    _write_params(project, params)
    assert "ingest" in _stale(project)
    _run(project, "dvc", "repro", "-q")
    assert _stale(project) == set()
    dataset = extra / "dataset.json"
    text = dataset.read_text()
    assert '"raw":"' in text
    dataset.write_text(text.replace('"raw":"', '"raw":"edited ', 1))
    assert _stale(project) == {"ingest"}  # a file of a listed dataset changed, no param did
