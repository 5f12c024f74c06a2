"""Trial 3: two trainings of one variant, and two processes opening a fresh tracking database.

A second ``rsitr train`` of a variant that another process is training stops at once with
one line naming the holder and how to proceed, and changes nothing; two processes that start
on a fresh SQLite store both get through its creation.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from conftest import one_line_error, rsitr
from rsitr.app.locks import variant_lock
from rsitr.config import load_params


def test_a_second_training_of_the_same_variant_is_refused_naming_the_holder(project: Path) -> None:
    params = load_params(project)
    with variant_lock(params, "finetune", "train"):
        done = rsitr("train", "--params", str(project), "--variant", "finetune", "--no-track")
    line = one_line_error(done)
    assert "variant finetune is busy" in line and "PID" in line and "wait for it" in line
    assert not (Path(params.paths.models) / "finetune" / "best.pt").exists()


def _open_store(uri: str, barrier, results) -> None:
    from rsitr.config import params_from_dict
    from rsitr.tracking.mlflow_tracking import Tracker

    barrier.wait()
    try:
        Tracker.start(params_from_dict({"tracking": {"uri": uri}}), "race", {})
        results.put("ok")
    except Exception as exc:  # noqa: BLE001 - the test reports whatever broke
        results.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_create_a_fresh_tracking_database_together(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_open_store, args=(uri, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert sorted(results.get(timeout=5) for _ in workers) == ["ok", "ok"]
