"""What a result depends on, as hashes: the data version, the code version and the config.

* **data version**: the md5 of the processed manifest (``data/processed/manifest.parquet``),
  the same value ``dvc.lock`` records for the split stage's output, so an MLflow run, a
  leaderboard row and a DVC commit name the same data.
* **code version**: a sha256 over the source files of the packages a step runs (as DVC
  hashes a stage's code deps), so editing a README retrains nothing while editing a loss
  retrains what uses it.
* **fingerprint** of a step: sha256 of its resolved config, the data version and the code
  version. The Prefect flows cache on it (``rsitr.app.caching``), and ``run.json`` records
  it beside the checkpoint it describes.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from rsitr.app.paths import ProjectPaths
from rsitr.config import RsitrParams, to_dict
from rsitr.errors import DataError

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/rsitr
TRAIN_CODE = ("config", "data", "models", "losses", "training", "retrieval")
EVAL_CODE = ("config", "data", "models", "retrieval")


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()  # noqa: S324 - DVC's content hash, not security
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def data_version(params: RsitrParams) -> str:
    """md5 of the processed manifest (what ``dvc.lock`` records for ``split``)."""
    manifest = ProjectPaths.of(params).manifest
    if not manifest.is_file():
        raise DataError(f"{manifest} not found; build the data first with `dvc repro`")
    return _cached_md5(str(manifest.resolve()), manifest.stat().st_mtime_ns, manifest.stat().st_size)


@lru_cache(maxsize=16)
def _cached_md5(path: str, mtime_ns: int, size: int) -> str:
    return md5_file(path)


@lru_cache(maxsize=8)
def code_version(packages: tuple[str, ...]) -> str:
    """sha256 over the ``.py`` and ``.json`` sources of ``rsitr.<package>`` for each package."""
    digest = hashlib.sha256()
    for package in sorted(packages):
        for path in sorted((PACKAGE_ROOT / package).rglob("*")):
            if path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def train_config(params: RsitrParams, variant: str) -> dict[str, Any]:
    """The resolved values training reads: the variant, the model, text handling, seeds."""
    v = params.variant(variant)
    config: dict[str, Any] = {
        "variant": to_dict(v),
        "model": to_dict(params.model),
        "seed": params.seed,
        "text": to_dict(params.text),
        "eval_batch_size": params.eval.batch_size,
    }
    if v.method == "ebaker":
        config["keywords"] = to_dict(params.keywords)
    if v.train.init_from and Path(v.train.init_from).is_file():
        config["init_from_md5"] = md5_file(v.train.init_from)
    if v.train.init_from_variant:  # retrains when the parent's training would
        config["init_from_variant"] = train_fingerprint(params, v.train.init_from_variant)
    if params.model.pretrained and Path(params.model.pretrained).is_file():  # e.g. models/foundation/foundation.pt
        pretrained = Path(params.model.pretrained)
        config["pretrained_md5"] = _cached_md5(str(pretrained.resolve()), pretrained.stat().st_mtime_ns,
                                               pretrained.stat().st_size)
    return config


def train_fingerprint(params: RsitrParams, variant: str) -> str:
    return digest({"config": train_config(params, variant), "data": data_version(params),
                   "code": code_version(TRAIN_CODE)})


def evaluate_fingerprint(params: RsitrParams, variant: str) -> str:
    v = params.variant(variant)
    return digest({"train": train_fingerprint(params, variant), "eval": to_dict(v.eval),
                   "datasets": [d.name for d in params.datasets if d.evaluate], "code": code_version(EVAL_CODE)})


def c2f_fingerprint(params: RsitrParams, variant: str) -> str:
    return digest({"evaluate": evaluate_fingerprint(params, variant), "c2f": to_dict(params.c2f)})
