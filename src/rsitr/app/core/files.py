"""Small file writers of the application: JSON, line lists and tables, written atomically.

A file is written beside its target under a temporary name and renamed into place, so a
killed stage never leaves a half-written output that a later step would read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from rsitr.atomic import atomic_path, write_text
from rsitr.errors import DataError

__all__ = ["read_table", "write_json", "write_lines", "write_table", "write_text"]




def write_json(path: str | Path, payload: Any) -> Path:
    return write_text(path, json.dumps(payload, indent=2, ensure_ascii=False, default=float) + "\n")


def write_lines(path: str | Path, lines: Iterable[str]) -> Path:
    return write_text(path, "".join(f"{line}\n" for line in lines))


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def read_table(path: Path, stage: str) -> pd.DataFrame:
    """A stage input; a missing file names the stage that writes it."""
    if not path.is_file():
        raise DataError(f"{path} not found; run the {stage} stage first (dvc repro {stage})")
    return pd.read_parquet(path)
