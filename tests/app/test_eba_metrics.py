"""The training step's EBA figures: eliminated captions of last.pt against the planted weak captions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from rsitr.app.steps.eba import eba_metrics
from rsitr.app.core.paths import ProjectPaths
from rsitr.config import load_params

REPO = Path(__file__).resolve().parents[2]


def _project(tmp_path: Path, records: list[dict]) -> object:
    params = load_params(REPO / "params.yaml", [
        f"paths.data={tmp_path / 'data'}", f"paths.models={tmp_path / 'models'}", f"synth.out={tmp_path / 'raw'}"])
    rows = [{"dataset": "synth_a", "image_id": f"synth_a/{image}", "image_key": image, "image_path": f"/i/{image}",
             "caption": f"{image} {index}", "language": "en", "split": "train", "caption_index": index}
            for image in ("x.jpg", "y.jpg") for index in range(3)]  # caption ids 0..5: x0 x1 x2 y0 y1 y2
    paths = ProjectPaths.of(params)
    paths.manifest.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(paths.manifest)
    (tmp_path / "raw").mkdir()
    weak = [{"dataset": "synth_a", "filename": "y.jpg", "caption_index": 2}, {"dataset": "synth_a", "filename": "x.jpg",
                                                                              "caption_index": 1}]
    (tmp_path / "raw" / "ground_truth.json").write_text(json.dumps({"weak_captions": weak}))
    last = paths.last_checkpoint("ebaker")
    last.parent.mkdir(parents=True)
    torch.save({"loss_state": {"_extra_state": {"eliminated": records}}}, last)
    return params


def test_precision_and_recall_of_the_eliminated_captions(tmp_path: Path) -> None:
    # eliminated: y2 (planted), x0 (not planted) -> precision 50 %, recall 1 of 2 planted = 50 %
    params = _project(tmp_path, [{"epoch": 1, "caption_id": 5}, {"epoch": 1, "caption_id": 0}])
    assert eba_metrics(params, "ebaker") == pytest.approx({"eba_precision": 50.0, "eba_recall": 50.0,
                                                           "eba_eliminated": 2.0})
    report = json.loads(ProjectPaths.of(params).eba_report("ebaker").read_text())
    assert report["planted_in_train"] == 2 and report["eliminated_captions"] == 2


def test_nothing_without_eba_or_ground_truth(tmp_path: Path) -> None:
    params = _project(tmp_path, [{"epoch": 1, "caption_id": 5}])
    assert eba_metrics(params, "finetune") == {}
    (tmp_path / "raw" / "ground_truth.json").unlink()
    assert eba_metrics(params, "ebaker") == {}
