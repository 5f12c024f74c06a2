"""Library and application code logs (module loggers); only the CLI prints.

``rsitr.cli`` configures logging so users still see progress on stderr, and Prefect collects
the same lines from the ``rsitr`` logger. ``rsitr/train.py`` is the torchrun entry point, the
CLI layer (tests/test_architecture.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rsitr"
CLI = ("cli", "train.py")


def print_calls(source: str) -> list[int]:
    """Lines of every ``print(...)`` call in ``source``."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]


def offenders() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in CLI:
            continue
        found += [f"{relative}:{line}" for line in print_calls(path.read_text(encoding="utf-8"))]
    return found


def test_no_print_outside_the_cli() -> None:
    assert offenders() == [], "use a module logger (logging.getLogger(__name__)) instead of print"


def test_the_check_finds_a_print() -> None:
    assert print_calls("import logging\nprint('x')\nlogging.info('y')\ndef f():\n    print(1)\n") == [2, 5]
