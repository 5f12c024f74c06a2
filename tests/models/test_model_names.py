"""``model.arch`` with open_clip's schemas: ``hf-hub:org/repo`` and ``local-dir:/folder``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsitr.cli import main
from rsitr.config import load_params
from rsitr.errors import ModelError
from rsitr.models.factory import build_clip

MICRO = Path(__file__).resolve().parents[1] / "model_configs" / "rsitr-test-micro.json"


def test_missing_hub_model_offline_is_one_clear_line(repo_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: nothing to find, nothing to fetch
    params = load_params(repo_root / "params.yaml", ["model.arch=hf-hub:nobody/no-such-clip", "model.pretrained="])
    with pytest.raises(ModelError) as caught:
        build_clip(params.model)
    message = str(caught.value)
    assert "\n" not in message
    assert "hf-hub:nobody/no-such-clip" in message and "HF_HUB_OFFLINE" in message
    assert "hf download nobody/no-such-clip" in message


def test_missing_hub_model_through_the_cli(tmp_path: Path, monkeypatch, capsys, repo_root: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code = main(["describe", "--variant", "zeroshot", "--params", str(repo_root / "params.yaml"),
                 "--set", "model.arch=hf-hub:nobody/no-such-clip", "--set", "model.pretrained="])
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1 and "Traceback" not in err and "no-such-clip" in err


def test_hub_name_with_a_pretrained_tag_is_rejected(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml", ["model.arch=hf-hub:org/repo", "model.pretrained=openai"])
    with pytest.raises(ModelError, match="cannot be combined"):
        build_clip(params.model)


def test_local_dir_model_builds_with_its_preprocess_cfg(repo_root: Path, tmp_path: Path) -> None:
    config = {"model_cfg": json.loads(MICRO.read_text()), "preprocess_cfg": {"resize_mode": "squash"}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    params = load_params(repo_root / "params.yaml", [f"model.arch=local-dir:{tmp_path}", "model.pretrained="])
    bundle = build_clip(params.model, load_weights=False)
    assert bundle.preprocess.resize_mode == "squash" and bundle.image_size == 32
