"""What a result depends on, as hashes: the data version, the code version and the config.

* **data version**: the md5 of the processed manifest (``data/processed/manifest.parquet``),
  the same value ``dvc.lock`` records for the split stage's output, so an MLflow run, a
  leaderboard row and a DVC commit name the same data.
* **code version**: a sha256 over the source files a step runs: its library modules, the
  variant's model and loss modules (its ``MethodSpec``) and every rsitr module those import,
  transitively (as DVC hashes a stage's code deps). Editing a README retrains nothing, editing
  EBAKER's loss retrains the EBAKER variants only, editing the trainer retrains every variant.
* **fingerprint** of a step: sha256 of its resolved config, the data version and the code
  version. The Prefect flows cache on it (``rsitr.app.core.caching``), and ``run.json`` records
  it beside the checkpoint it describes.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from rsitr.app.core.paths import ProjectPaths
from rsitr.config import RsitrParams, method_spec, to_dict
from rsitr.errors import DataError

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # src/rsitr
# The library modules each step runs, beside the variant's own model and loss modules; a step's
# code version hashes these and every rsitr module they import (transitively), nothing else.
TRAIN_ROOTS = ("rsitr.training.trainer",)
EVAL_ROOTS = ("rsitr.models.trained", "rsitr.retrieval.evaluate", "rsitr.retrieval.ranks", "rsitr.retrieval.twins")
C2F_ROOTS = (*EVAL_ROOTS, "rsitr.retrieval.coarse_to_fine", "rsitr.retrieval.hash_head")
DATA_FILES = (".json",)  # non-Python sources beside a module (open_clip model configs)


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


def module_path(module: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The source file of ``rsitr.<...>`` under ``root`` (a package's ``__init__.py``), or None."""
    parts = module.split(".")[1:]
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path, root: Path) -> set[str]:
    """The rsitr modules ``path`` imports: ``import rsitr.x``, ``from rsitr.x import y`` (y a module or not)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("rsitr."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rsitr.") and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if module_path(f"{node.module}.{alias.name}", root) is not None)
    return found


def _with_parents(module: str) -> list[str]:
    """``rsitr.a.b`` -> ``rsitr.a``, ``rsitr.a.b`` (importing a module runs its packages' ``__init__``)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts) + 1)]


def module_closure(roots: tuple[str, ...], root: Path = PACKAGE_ROOT) -> list[Path]:
    """Source files of ``roots`` and of every rsitr module they import, transitively, sorted."""
    seen: dict[str, Path] = {}
    pending = [parent for module in roots for parent in _with_parents(module)]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        path = module_path(module, root)
        if path is None:
            if module in roots:
                raise ValueError(f"fingerprint root {module!r} is not a module under {root}")
            continue  # ``from rsitr.x import name``: a name, not a module
        seen[module] = path
        for imported in _imported_modules(path, root):
            pending.extend(_with_parents(imported))
    files = set(seen.values())
    for folder in {path.parent for path in seen.values()}:
        files.update(p for p in folder.rglob("*") if p.suffix in DATA_FILES and "__pycache__" not in p.parts)
    return sorted(files)


@lru_cache(maxsize=64)
def code_version(roots: tuple[str, ...], root: Path = PACKAGE_ROOT) -> str:
    """sha256 over the sources ``roots`` run (``module_closure``): editing a module changes exactly the
    code versions of the steps that import it, as DVC hashes a stage's code deps."""
    digest = hashlib.sha256()
    for path in module_closure(roots, root):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def method_modules(params: RsitrParams, variant: str, with_loss: bool) -> tuple[str, ...]:
    """The modules of the variant's model class and, for training, its loss class (its ``MethodSpec``)."""
    spec = method_spec(params.variant(variant).method)
    classes = [spec.model] + ([spec.loss] if with_loss and spec.loss is not None else [])
    return tuple(sorted({cls.__module__ for cls in classes}))


def step_code_version(params: RsitrParams, variant: str, step_roots: tuple[str, ...],
                      root: Path = PACKAGE_ROOT) -> str:
    """The code version of one step (train, evaluate, c2f) of ``variant``; only training runs the loss."""
    modules = method_modules(params, variant, with_loss=step_roots == TRAIN_ROOTS)
    return code_version(tuple(sorted({*step_roots, *modules})), root)


def digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def train_config(params: RsitrParams, variant: str) -> dict[str, Any]:
    """The resolved values training reads: the variant, the model, text handling, seeds."""
    v = params.variant(variant)
    config: dict[str, Any] = {
        "variant": {k: value for k, value in to_dict(v).items() if k not in ("benchmark", "c2f")},  # which runs
        # include the variant does not change what it trains
        "model": to_dict(params.model),
        "seed": params.seed,
        "text": to_dict(params.text),
        "eval_batch_size": params.eval.batch_size,
    }
    if method_spec(v.method).uses_keywords(v.options):
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
                   "code": step_code_version(params, variant, TRAIN_ROOTS)})


def evaluate_fingerprint(params: RsitrParams, variant: str) -> str:
    v = params.variant(variant)
    return digest({"train": train_fingerprint(params, variant), "eval": to_dict(v.eval),
                   "datasets": [d.name for d in params.datasets if d.evaluate], "code": step_code_version(params, variant, EVAL_ROOTS)})


def c2f_fingerprint(params: RsitrParams, variant: str) -> str:
    return digest({"evaluate": evaluate_fingerprint(params, variant), "c2f": to_dict(params.c2f),
                   "code": step_code_version(params, variant, C2F_ROOTS)})
