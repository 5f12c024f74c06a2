"""A tiny split manifest (the file the data stages hand to training) for engine tests.

Solid-colour 64 px "scenes" whose captions name the colour, so a tiny CLIP learns them in
seconds. Imported by tests as ``from toy_data import ...`` (a name no other test folder uses).

The toy projects train ``TEST_ARCH``, a test-only open_clip architecture (``tests/model_configs``:
width 32, one layer per tower, 32 px images, 32-token context), about ten times cheaper per step
than ``rsitr-tiny`` on a CPU. The tests' conftest registers it with open_clip; a child process
registers it through ``tests/run_with_test_models.py``.
"""

from __future__ import annotations

from pathlib import Path

TEST_ARCH = "rsitr-test-micro"
TEST_MODEL_CONFIGS = Path(__file__).resolve().with_name("model_configs")
RUN_WITH_TEST_MODELS = Path(__file__).resolve().with_name("run_with_test_models.py")


def register_test_models() -> None:
    """Make ``TEST_ARCH`` known to open_clip in this process (idempotent)."""
    import open_clip

    if TEST_ARCH not in open_clip.list_models():
        open_clip.add_model_config(TEST_MODEL_CONFIGS)


TOY_COLOURS = {
    "red": (200, 30, 30),
    "green": (30, 160, 40),
    "blue": (30, 40, 200),
    "yellow": (220, 220, 30),
    "white": (240, 240, 240),
    "black": (10, 10, 10),
}


def make_toy_benchmark(root: Path, n_images: int = 120, seed: int = 0) -> Path:
    """Write images + ``processed/manifest.parquet`` + ``models/keywords/keywords.txt`` under ``root``."""
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
    (root / "models" / "keywords").mkdir(parents=True, exist_ok=True)  # the keywords step's output
    (root / "models" / "keywords" / "keywords.txt").write_text("field\n" + "\n".join(names) + "\n")
    return root


_MIGRATED_STORE: list[Path] = []


def migrated_tracking_db(path: Path) -> str:
    """``sqlite:///<path>``: an empty MLflow store whose schema already exists (``path`` is left alone if present).

    A fresh SQLite store spends 5-8 s of a 2-core CPU on MLflow's schema migrations; the tests' projects
    start from a copy of one store migrated once per session instead. The test of store creation itself
    (``faults/test_concurrency.py``) keeps a fresh file.
    """
    import shutil

    if not _MIGRATED_STORE:
        import atexit
        import tempfile

        from mlflow.tracking import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix="rsitr-test-mlflow-"))
        atexit.register(shutil.rmtree, folder, True)
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()  # creates the tables
        _MIGRATED_STORE.append(folder / "mlflow.db")
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_MIGRATED_STORE[0], path)
    return f"sqlite:///{path}"


def toy_params_dict(root: Path, *, arch: str = TEST_ARCH, **train: object) -> dict:
    """A params mapping pointing every path at ``root`` (the test-only micro model, quick training)."""
    return {
        "model": {"arch": arch},
        "paths": {"data": str(root), "models": str(root / "models"), "metrics": str(root / "metrics"),
                  "reports": str(root / "reports")},
        "datasets": [{"name": "toy", "format": "precomp", "root": str(root)}],
        "train": {"epochs": 2, "batch_size": 16, "budget": 1.0, "lr": 1.0e-3, "warmup_share": 0.2, **train},
        "eval": {"languages": ["en"]},  # the toy captions are English only
        "pretrain": {"enabled": False},
        "tracking": {"uri": f"sqlite:///{root}/mlflow.db"},
        "variants": {"zeroshot": {"method": "zeroshot"}, "finetune": {"method": "finetune"}},
    }
