"""One process at a time per variant: a lock file beside its checkpoints.

Two ``rsitr train --variant finetune`` on the same folders would overwrite each other's
checkpoints and leave one MLflow run pointing at the other's weights. ``variant_lock``
takes ``models/<variant>/.lock`` (``filelock``: the OS releases it when the holder dies,
so a killed run never leaves a stale lock) and records the holder (PID, step, MLflow run)
in ``.lock.json``, which the refusal names in one line with how to proceed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rsitr.app.core.paths import ProjectPaths
from rsitr.config import RsitrParams
from rsitr.errors import RsitrError


class VariantBusy(RsitrError):
    """Another process holds the variant's lock."""


def _holder(info: Path) -> str:
    try:
        raw = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "another process"
    run = f", MLflow run {raw['run_id']}" if raw.get("run_id") else ""
    return f"PID {raw.get('pid')} ({raw.get('step')}{run}, since {raw.get('since')})"


@contextmanager
def variant_lock(params: RsitrParams, variant: str, step: str) -> Iterator[Path]:
    """Hold ``models/<variant>/.lock`` for ``step``; refuse at once when another process has it."""
    folder = ProjectPaths.of(params).variant_dir(variant)
    folder.mkdir(parents=True, exist_ok=True)
    info = folder / ".lock.json"
    lock = FileLock(str(folder / ".lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise VariantBusy(f"variant {variant} is busy: {_holder(info)} holds {folder / '.lock'}; wait for it to "
                          f"finish or stop it (kill <PID>), then run {step} again") from None
    try:
        info.write_text(json.dumps({"pid": os.getpid(), "step": step, "since": time.strftime("%H:%M:%S")}),
                        encoding="utf-8")
        yield info
    finally:
        info.unlink(missing_ok=True)
        lock.release()


def note_run(info: Path, run_id: str | None) -> None:
    """Add the MLflow run id to the holder record (shown to a refused second process)."""
    try:
        raw = json.loads(info.read_text(encoding="utf-8"))
        info.write_text(json.dumps({**raw, "run_id": run_id}), encoding="utf-8")
    except (OSError, ValueError):
        pass
