"""A toy rsitr project for tests: 240 tiny single-colour images with 5 captions each.

Written straight into the processed-manifest format (no data stages), with a params file
whose paths, tracking database and MLflow artifact root all live under ``root``. Test
folders are not packages, so the tracking, pipelines and reporting conftests load this
file by path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

COLOURS = {
    "red": (200, 30, 30), "green": (30, 160, 40), "blue": (30, 40, 200),
    "yellow": (220, 220, 30), "white": (240, 240, 240), "black": (10, 10, 10),
}
WORDS = ("plain", "flat", "uniform", "simple", "bare")
EXPERIMENT = "rsitr-test"


def make_toy_dataset(data: Path, images: int = 240) -> Path:
    """Images under ``data/img`` and ``data/processed/manifest.parquet`` (train/val/test 2/3, 1/6, 1/6)."""
    (data / "img").mkdir(parents=True, exist_ok=True)
    (data / "processed").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    rows = []
    for i in range(images):
        colour = names[i % len(names)]
        pixels = np.clip(np.array(COLOURS[colour])[None, None, :] + rng.normal(0, 20, (64, 64, 3)), 0, 255)
        path = data / "img" / f"{i}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        split = "train" if i < images * 2 // 3 else ("val" if i < images * 5 // 6 else "test")
        for k, word in enumerate(WORDS):
            rows.append(dict(dataset="toy", image_id=f"toy/{i}.png", image_key=f"{i}.png", image_path=str(path),
                             caption=f"a {word} {colour} field", language="en", official_split=split,
                             caption_index=k, split=split, cluster=i))
    pd.DataFrame(rows).to_parquet(data / "processed" / "manifest.parquet")
    (data.parent / "models" / "keywords").mkdir(parents=True, exist_ok=True)
    (data.parent / "models" / "keywords" / "keywords.txt").write_text("field\n")
    return data


def write_params(root: Path, *, epochs: int = 1, arch: str = "rsitr-tiny") -> Path:
    params = {
        "model": {"arch": arch},
        "paths": {k: str(root / k) for k in ("data", "models", "metrics", "reports")},
        "datasets": [{"name": "toy", "format": "precomp", "root": str(root / "data")}],
        "train": {"epochs": epochs, "batch_size": 32, "budget": 1.0, "lr": 1.0e-3, "warmup_share": 0.2,
                  "device": "cpu"},
        "eval": {"batch_size": 128, "languages": ["en"]},
        "pretrain": {"enabled": False},  # the toy project trains from the architecture's random weights
        "tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": EXPERIMENT},
        "promotion": {"test_set": "toy", "language": "en", "margin": 0.5},
        "variants": {"zeroshot": {"method": "zeroshot"}, "finetune": {"method": "finetune"}},
    }
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def create_experiment(root: Path, name: str = EXPERIMENT) -> str:
    """The experiment, with its artifacts under ``root/mlruns`` (not the current directory's)."""
    from mlflow.tracking import MlflowClient
    from toy_data import migrated_tracking_db  # tests/ is on sys.path through the tests' conftest

    client = MlflowClient(tracking_uri=migrated_tracking_db(root / "mlflow.db"))
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    return client.create_experiment(name, artifact_location=(root / "mlruns").as_uri())


def make_project(root: Path, *, images: int = 240, arch: str = "rsitr-tiny") -> Path:
    """Dataset + params + experiment under ``root``; returns the params file.

    ``arch`` other than ``rsitr-tiny`` (e.g. the tests' micro model, ``toy_data.TEST_ARCH``) must be
    registered with open_clip in every process that builds the model.
    """
    make_toy_dataset(root / "data", images)
    params = write_params(root, arch=arch)
    create_experiment(root)
    return params
