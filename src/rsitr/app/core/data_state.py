"""Is DVC's data current? The model work checks before it starts.

The flows train on ``data/processed/manifest.parquet``; when params.yaml or a raw dataset
changed since the last ``dvc repro``, training would silently use stale data. ``dvc
status`` of the ``split`` stage (with its upstream stages) says whether anything changed.
"""

from __future__ import annotations

from pathlib import Path

from rsitr.errors import DataError

DATA_STAGE = "split"


def stale_data_stages(root: str | Path = ".") -> list[str]:
    """Names of the DVC stages (up to ``split``) whose outputs are out of date; [] when current."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        status = repo.status(targets=[DATA_STAGE], with_deps=True)
    return sorted({name.split(":")[-1] for name in status})


def check_data_current(root: str | Path = ".") -> None:
    """One clear line naming ``dvc repro`` when the data stages are stale (no-op outside a DVC project)."""
    root = Path(root)
    if not (root / "dvc.yaml").is_file():
        return
    stale = stale_data_stages(root)
    if stale:
        raise DataError(f"the versioned data is out of date (changed: {', '.join(stale)}); run `dvc repro` first, "
                        "then start the flow again")
