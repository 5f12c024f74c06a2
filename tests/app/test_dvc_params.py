"""Each DVC data stage declares exactly the params it reads.

The stage functions run on a tiny synthetic benchmark with their params wrapped in an
access recorder; the dotted keys they read must be covered by the stage's ``params:`` in
``dvc.yaml``, and every declared key must be read. So ``dvc status`` marks a stage stale
for every value it depends on, and for nothing else.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from rsitr.app.steps.data import DATA_STAGES
from rsitr.config import params_from_dict

REPO = Path(__file__).resolve().parents[2]


class Recorder:
    """Wraps a frozen params dataclass; records the dotted key of every leaf value read."""

    def __init__(self, target: Any, prefix: str, log: set[str]):
        self._target, self._prefix, self._log = target, prefix, log

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        key = f"{self._prefix}.{name}" if self._prefix else name
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return Recorder(value, key, self._log)
        if callable(value):
            raise AssertionError(f"a data stage called params.{key}(); record what it reads instead")
        self._log.add(key)
        return value


def declared_params(stage: str) -> set[str]:
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    return {entry for entry in spec.get("params", []) if isinstance(entry, str)}


def covered(key: str, declared: set[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dvc_params")
    raw = root / "data" / "raw" / "synth"
    params = params_from_dict({
        "paths": {k: str(root / k) for k in ("data", "models", "metrics", "reports")},
        "synth": {"out": str(raw), "images": 40, "seed": 5},
        "datasets": [
            {"name": "synth_rsicd", "format": "precomp", "root": str(raw / "synth_rsicd"),
             "images": str(raw / "synth_rsicd" / "synth_rsicd_images")},
            {"name": "synth_sydney", "format": "karpathy", "root": str(raw / "synth_sydney"),
             "images": str(raw / "synth_sydney" / "images")},
        ],
        "dedup": {"cache": str(root / "phash.json")},
        "synth_corpus": {"out": str(root / "data" / "raw" / "synth_corpus"), "images": 6, "shard_size": 4,
                         "workers": 1},
    })
    return {"params": params}


@pytest.mark.parametrize("stage", ["synth", "ingest", "dedup", "split", "synth_corpus"])  # pipeline order: each feeds the next
def test_stage_reads_exactly_its_declared_params(project: dict[str, Any], stage: str) -> None:
    read: set[str] = set()
    DATA_STAGES[stage](Recorder(project["params"], "", read))
    declared = declared_params(stage)
    assert sorted(k for k in read if not covered(k, declared)) == [], "read but not declared in dvc.yaml"
    assert sorted(d for d in declared if not any(covered(k, {d}) for k in read)) == [], "declared but never read"


def test_the_recorder_sees_nested_keys() -> None:
    read: set[str] = set()
    params = Recorder(params_from_dict({}), "", read)
    assert params.split.seed == 0 and params.paths.data == "data"
    assert read == {"split.seed", "paths.data"}
