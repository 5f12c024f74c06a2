"""Shared pytest fixtures.

Tests that read the real annotation files in ``../shared/datasets`` use the
``shared_datasets`` fixture, which skips cleanly when that folder is absent
(a user's fresh clone has no ``../shared``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("RSITR_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Path of ``../shared/datasets``; skips the test when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real annotation files not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


# ----------------------------------------------------------------------------- toy data
# A tiny split manifest (the file the data stages hand to training): solid-colour
# 64 px "scenes" whose captions name the colour, so a tiny CLIP learns it in seconds.
TOY_COLOURS = {
    "red": (200, 30, 30),
    "green": (30, 160, 40),
    "blue": (30, 40, 200),
    "yellow": (220, 220, 30),
    "white": (240, 240, 240),
    "black": (10, 10, 10),
}


def make_toy_benchmark(root: Path, n_images: int = 120, seed: int = 0) -> Path:
    """Write images + ``processed/manifest.parquet`` + ``processed/keywords.txt`` under ``root``."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    (root / "processed").mkdir(exist_ok=True)
    names = list(TOY_COLOURS)
    rows = []
    for i in range(n_images):
        colour = names[i % len(names)]
        pixels = np.array(TOY_COLOURS[colour])[None, None, :] + rng.normal(0, 20, (64, 64, 3))
        path = images / f"{i}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
        split = "train" if i < n_images * 2 // 3 else ("val" if i < n_images * 5 // 6 else "test")
        for k, word in enumerate(["plain", "flat", "uniform", "simple", "bare"]):
            rows.append(dict(dataset="toy", image_id=f"toy/{i}.png", image_key=f"{i}.png", image_path=str(path),
                             caption=f"a {word} {colour} field", language="en", official_split=split,
                             caption_index=k, split=split, cluster=i))
    pd.DataFrame(rows).to_parquet(root / "processed" / "manifest.parquet")
    (root / "processed" / "keywords.txt").write_text("field\n" + "\n".join(names) + "\n")
    return root


def toy_params_dict(root: Path, **train: object) -> dict:
    """A params mapping pointing every path at ``root`` (tiny model, quick training)."""
    return {
        "paths": {"data": str(root), "models": str(root / "models"), "metrics": str(root / "metrics"),
                  "reports": str(root / "reports")},
        "datasets": [{"name": "toy", "format": "precomp", "root": str(root)}],
        "train": {"epochs": 2, "batch_size": 16, "lr": 1.0e-3, "warmup_steps": 2, **train},
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db"},
        "variants": {"zeroshot": {"method": "zeroshot"}, "finetune": {"method": "finetune"}},
    }


@pytest.fixture(scope="session")
def toy_benchmark(tmp_path_factory) -> Path:
    return make_toy_benchmark(tmp_path_factory.mktemp("toy"))
