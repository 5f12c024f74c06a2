"""rsitr uses MLflow through its public API only: no ``mlflow..._private`` module or attribute."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "rsitr"
PRIVATE_MODULE = re.compile(r"mlflow\S*\._")


def private_uses(source: str) -> list[str]:
    """Imports of private MLflow modules and ``._name`` attribute reads (dunders aside) in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and PRIVATE_MODULE.search(node.module):
            found.append(f"{node.lineno}: from {node.module}")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if PRIVATE_MODULE.search(a.name)]
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if "mlflow" in ast.unparse(node.value).lower() or node.attr.startswith("_to_mlflow"):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_private_mlflow_names_in_src() -> None:
    offenders = [f"{path.relative_to(PACKAGE)}:{use}" for path in sorted(PACKAGE.rglob("*.py"))
                 for use in private_uses(path.read_text(encoding="utf-8"))]
    offenders += [f"{path.relative_to(PACKAGE)}: {m.group(0)}" for path in sorted(PACKAGE.rglob("*.py"))
                  for m in PRIVATE_MODULE.finditer(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_check_finds_private_uses() -> None:
    source = ("from mlflow.tracking._tracking_service import utils\n"
              "x = utils._tracking_uri\nentity = dataset._to_mlflow_entity()\nimport mlflow\nmlflow.get_tracking_uri()\n")
    assert [u.split(":")[0] for u in private_uses(source)] == ["1", "3"]
    assert PRIVATE_MODULE.search(source)
