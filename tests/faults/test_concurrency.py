"""Trial 3: two trainings of one variant, and two processes opening a fresh tracking database.

A second ``rsitr train`` of a variant that another process is training stops at once with
one line naming the holder and how to proceed, and changes nothing; two processes that start
on a fresh SQLite store both get through its creation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import one_line_error, rsitr
from rsitr.app.core.locks import variant_lock
from rsitr.config import load_params


def test_a_second_training_of_the_same_variant_is_refused_naming_the_holder(project: Path) -> None:
    params = load_params(project)
    with variant_lock(params, "finetune", "train"):
        done = rsitr("train", "--params", str(project), "--variant", "finetune", "--no-track")
    line = one_line_error(done)
    assert "variant finetune is busy" in line and "PID" in line and "wait for it" in line
    assert not (Path(params.paths.models) / "finetune" / "best.pt").exists()


OPEN_STORE = """
import sys, time
from pathlib import Path
from rsitr.config import params_from_dict
from rsitr.tracking.mlflow_tracking import Tracker
params = params_from_dict({"tracking": {"uri": sys.argv[1]}})
ready = Path(sys.argv[2])
(ready / sys.argv[3]).touch()  # imports done; both processes start together
deadline = time.monotonic() + 300
while len(list(ready.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
Tracker.start(params, "race", {})
print("ok")
"""


def test_two_processes_create_a_fresh_tracking_database_together(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    ready = tmp_path / "ready"  # each interpreter marks itself ready once it has imported MLflow
    ready.mkdir()
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_STORE, uri, str(ready), str(k)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for k in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0 and out.strip() == "ok", err[-2000:]
