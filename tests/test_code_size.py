"""Code stays small enough to read: no function in src/ over 60 lines or with more than 8 parameters."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "rsitr"
MAX_LINES = 60
MAX_PARAMETERS = 8  # besides self / cls


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    names += [f"*{args.vararg.arg}"] if args.vararg else []
    names += [f"**{args.kwarg.arg}"] if args.kwarg else []
    return [name for name in names if name not in ("self", "cls")]


def oversized(source: str, where: str) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            count = len(_parameters(node))
            if lines > MAX_LINES:
                problems.append(f"{where}:{node.lineno} {node.name}: {lines} lines (max {MAX_LINES})")
            if count > MAX_PARAMETERS:
                problems.append(f"{where}:{node.lineno} {node.name}: {count} parameters (max {MAX_PARAMETERS})")
    return problems


def test_no_function_is_too_long_or_takes_too_many_parameters():
    problems = [p for path in sorted(SRC.rglob("*.py"))
                for p in oversized(path.read_text(encoding="utf-8"), str(path.relative_to(SRC)))]
    assert problems == []


def test_the_check_catches_both():
    long_body = "\n".join(f"    x{i} = {i}" for i in range(61))
    source = f"def long():\n{long_body}\n\ndef wide(self, a, b, c, d, e, f, g, h, *, i):\n    pass\n\n" \
             "def fine(self, a, b, c, d, e, f, g, h):\n    pass\n"
    assert oversized(source, "m.py") == ["m.py:1 long: 62 lines (max 60)", "m.py:64 wide: 9 parameters (max 8)"]
