"""Honest package metadata: every imported third-party module is declared, floors fit the lock.

``pyproject.toml`` declares what ``src/rsitr`` imports (mapped to distributions with
``importlib.metadata.packages_distributions``); ``requires-python`` admits no Python older than
the pinned packages of ``requirements.lock`` need; each declared requirement admits its pin.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from rsitr.cli import main

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# modules imported only behind an ImportError guard, with the extra that provides them
OPTIONAL = {"transformers": "multilingual"}


def _requirements(extras: bool = True) -> list[Requirement]:
    found = [Requirement(r) for r in PROJECT["dependencies"]]
    if extras:
        found += [Requirement(r) for group in PROJECT.get("optional-dependencies", {}).values() for r in group]
    return found


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, pinned = line.strip().split("==")
            pins[canonicalize_name(name)] = pinned
    return pins


def third_party_imports(package: Path) -> dict[str, str]:
    """Top-level module -> the first file importing it, for every non-stdlib, non-rsitr import."""
    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "rsitr":
                    found.setdefault(top, str(path.relative_to(package.parent)))
    return found


def undeclared(imports: dict[str, str], declared: set[str]) -> list[str]:
    distributions = md.packages_distributions()
    problems = []
    for module, where in sorted(imports.items()):
        if module in OPTIONAL:
            if OPTIONAL[module] not in PROJECT.get("optional-dependencies", {}):
                problems.append(f"{module} ({where}): extra {OPTIONAL[module]!r} missing")
            continue
        names = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not names:
            problems.append(f"{module} ({where}): not installed, so no distribution to check")
        elif not names & declared:
            problems.append(f"{module} ({where}): from {sorted(names)}, none declared in pyproject.toml")
    return problems


def test_every_imported_third_party_module_is_declared() -> None:
    declared = {canonicalize_name(r.name) for r in _requirements(extras=False)}
    assert undeclared(third_party_imports(ROOT / "src" / "rsitr"), declared) == []


def test_the_scan_catches_an_undeclared_import(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("import os\nimport yaml\nfrom fastapi import FastAPI\n")
    imports = third_party_imports(tmp_path / "pkg")
    assert set(imports) == {"yaml", "fastapi"}
    assert [p.split(" ")[0] for p in undeclared(imports, {"pyyaml"})] == ["fastapi"]


def test_requires_python_matches_the_lock() -> None:
    """The lock's pins need Python 3.11: requires-python admits 3.11 and nothing older."""
    requires = SpecifierSet(PROJECT["requires-python"])
    floor = re.fullmatch(r">=\s*(3\.\d+)", PROJECT["requires-python"].strip())
    assert floor, "requires-python should be a plain floor, e.g. '>=3.11'"
    needs = []
    for name in _pins():
        try:
            spec = md.metadata(name).get("Requires-Python")
        except md.PackageNotFoundError:
            continue  # bench-only pins not installed here
        if spec and not SpecifierSet(spec).contains(floor.group(1)):
            needs.append(f"{name} needs Python {spec}")
    assert needs == [], needs
    assert requires.contains("3.11") and not requires.contains("3.10")


def test_declared_requirements_admit_their_lock_pins() -> None:
    pins = _pins()
    wrong = [f"{r} vs lock {pins[canonicalize_name(r.name)]}" for r in _requirements()
             if canonicalize_name(r.name) in pins and not r.specifier.contains(pins[canonicalize_name(r.name)])]
    assert wrong == []
    runtime_unpinned = [r.name for r in _requirements(extras=False) if canonicalize_name(r.name) not in pins]
    assert runtime_unpinned == []


def test_floors_cover_the_apis_used() -> None:
    """The floors the code relies on: MLflow 3 logged models, Prefect 3, open_clip 3 schemas, FastAPI's cap."""
    by_name = {canonicalize_name(r.name): r.specifier for r in _requirements(extras=False)}
    assert not by_name["mlflow"].contains("2.22.0") and by_name["mlflow"].contains("3.0.0")
    assert not by_name["prefect"].contains("2.20.0") and not by_name["prefect"].contains("4.0.0")
    assert not by_name["open-clip-torch"].contains("2.32.0")
    assert not by_name["fastapi"].contains("0.151.0")


def test_version_has_one_source(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"rsitr {md.version('rsitr')}"
    assert PROJECT["version"] == md.version("rsitr")
    assert not re.search(r"__version__ = \"\d+\.\d+", (ROOT / "src" / "rsitr" / "__init__.py").read_text(encoding="utf-8"))
