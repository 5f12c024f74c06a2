"""A step's code version hashes the modules it imports: a changed method retrains its own variants only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rsitr.app.core.fingerprint import C2F_ROOTS, EVAL_ROOTS, TRAIN_ROOTS, code_version, module_closure, step_code_version
from rsitr.config import load_params

SRC = Path(__file__).resolve().parents[2] / "src" / "rsitr"
REPO = SRC.parents[1]


@pytest.fixture
def source_copy(tmp_path) -> Path:
    copy = tmp_path / "rsitr"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _versions(params, root: Path, roots: tuple[str, ...]) -> dict[str, str]:
    code_version.cache_clear()  # one process, edited sources: the cache is per process by design
    return {name: step_code_version(params, name, roots, root) for name in params.variants}


@pytest.mark.parametrize("module, method", [("models/petl.py", "petl"), ("losses/ebaker.py", "ebaker"),
                                            ("losses/hmmc.py", "petl"), ("models/finetune.py", "finetune")])
def test_editing_one_methods_module_changes_its_variants_only(source_copy, module, method):
    params = load_params(REPO / "params.yaml")
    before = {roots: _versions(params, source_copy, roots) for roots in (TRAIN_ROOTS, EVAL_ROOTS, C2F_ROOTS)}
    with open(source_copy / module, "a", encoding="utf-8") as handle:
        handle.write("\n# an edit\n")
    for roots, versions in before.items():
        after = _versions(params, source_copy, roots)
        changed = {name for name in versions if after[name] != versions[name]}
        expected = {name for name, v in params.variants.items() if v.method == method}
        if module.startswith("losses/") and roots != TRAIN_ROOTS:
            expected = set()  # evaluation never runs the loss
        assert changed == expected, (module, roots)


def test_editing_the_trainer_changes_every_trained_variant(source_copy):
    params = load_params(REPO / "params.yaml")
    before = _versions(params, source_copy, TRAIN_ROOTS)
    with open(source_copy / "training" / "trainer.py", "a", encoding="utf-8") as handle:
        handle.write("\n# an edit\n")
    after = _versions(params, source_copy, TRAIN_ROOTS)
    assert {n for n in before if before[n] != after[n]} == set(params.variants)


def test_an_unrelated_module_changes_nothing(source_copy):
    params = load_params(REPO / "params.yaml")
    before = _versions(params, source_copy, TRAIN_ROOTS)
    with open(source_copy / "app" / "serving" / "serve.py", "a", encoding="utf-8") as handle:
        handle.write("\n# an edit\n")
    assert _versions(params, source_copy, TRAIN_ROOTS) == before


def test_the_closure_follows_imports_and_includes_model_configs():
    files = {p.relative_to(SRC).as_posix() for p in module_closure(("rsitr.models.ebaker",))}
    assert {"models/ebaker.py", "models/local_alignment.py", "models/retrieval_model.py", "config/schema.py",
            "models/__init__.py", "models/model_configs/rsitr-tiny.json"} <= files
    assert "models/petl.py" not in files and "losses/ebaker.py" not in files
    with pytest.raises(ValueError, match="rsitr.models.nothing"):
        module_closure(("rsitr.models.nothing",))
