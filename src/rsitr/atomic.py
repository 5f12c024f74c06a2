"""Atomic file writes: every rsitr output is written beside its target and renamed into place.

A killed process therefore never leaves a half-written file under the target's name that a
later step would read; at worst it leaves a hidden ``.<name>.tmp-<pid>-<token>`` file, which
``rsitr.training.checkpoint.remove_stale_temporaries`` (and the next writer) can delete.
The temporary is opened normally (not ``mkstemp``), so the result keeps the usual file mode.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_MARK = ".tmp-"


def temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path``, unique per process and call (threads may write at once)."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
