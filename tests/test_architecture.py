"""The package's layering, enforced: library packages import one way, the CLI stands apart.

data -> models -> losses -> methods -> retrieval -> training -> tracking -> reporting -> app -> cli
(``config`` and ``errors`` underneath everything). A module may import its own package and
any lower layer; library modules import rsitr at module level only (a function-level
import would hide a cycle); nothing outside the CLI imports ``rsitr.cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rsitr"
LAYERS = ["errors", "atomic", "config", "data", "models", "losses", "methods", "retrieval", "training", "tracking", "reporting", "app",
          "cli"]
LAYER_OF = {name: index for index, name in enumerate(LAYERS)} | {"train": LAYERS.index("cli")}  # torchrun entry
LIBRARY = set(LAYERS[: LAYERS.index("app")])


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue  # the public API (rsitr.load_params, rsitr.build_model), lazy by design
        out.append((parts[0], path))
    return out


def _rsitr_imports(tree: ast.AST) -> list[tuple[str, int, bool]]:
    """(imported module, line, at function level?) of every ``rsitr`` import."""
    found = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "rsitr":
                found.append((child.module, child.lineno, nested))
            elif isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, nested) for a in child.names if a.name.split(".")[0] == "rsitr")
            visit(child, inner)

    visit(tree, False)
    return found


def _violations() -> list[str]:
    problems = []
    for package, path in _modules():
        where = path.relative_to(PACKAGE.parent)
        for module, line, nested in _rsitr_imports(ast.parse(path.read_text(encoding="utf-8"))):
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else "__init__"
            if target == "__init__":
                problems.append(f"{where}:{line} imports the top-level rsitr package")
            elif LAYER_OF[target] > LAYER_OF[package]:
                problems.append(f"{where}:{line} ({package}) imports rsitr.{target}, a higher layer")
            if target == "cli" and package not in ("cli", "train"):
                problems.append(f"{where}:{line} imports the CLI")
            if nested and package in LIBRARY:
                problems.append(f"{where}:{line} imports {module} inside a function")
    return problems


def test_every_subpackage_has_a_layer() -> None:
    assert {package for package, _ in _modules()} <= set(LAYER_OF)


def test_library_imports_one_way_and_only_at_module_level() -> None:
    assert _violations() == []


def test_the_contract_catches_a_violation(tmp_path: Path) -> None:
    tree = ast.parse("import os\ndef f():\n    from rsitr.app.core.paths import ProjectPaths\n")
    assert _rsitr_imports(tree) == [("rsitr.app.core.paths", 3, True)]


@pytest.mark.parametrize("module", ["training/trainer.py", "training/optim.py", "app/steps/training.py", "app/flows.py"])
def test_trainer_and_flows_have_no_function_over_60_lines(module: str) -> None:
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    long = [f"{node.name}: {node.end_lineno - node.lineno + 1} lines" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60]
    assert long == []


def test_only_the_app_package_builds_artifact_paths() -> None:
    """``params.paths`` is read by rsitr.app alone (the library receives paths as arguments)."""
    readers = [str(path.relative_to(PACKAGE)) for package, path in _modules()
               if package not in ("app", "config") and ".paths" in path.read_text(encoding="utf-8")
               and "params.paths" in path.read_text(encoding="utf-8")]
    assert readers == []
