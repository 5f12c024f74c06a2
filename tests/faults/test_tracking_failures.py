"""Trial 4: a broken tracking server, file stores, another URI on resume, truncated checkpoints.

Each fails in seconds with one line and exit code 2, never a traceback and never a hang.
"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import pytest

from conftest import one_line_error, rsitr
from rsitr.app.core.paths import ProjectPaths
from rsitr.app.core.runs import mark_active
from rsitr.app.steps.training import run_train
from rsitr.config import load_params


class HealthyButBroken(http.server.BaseHTTPRequestHandler):
    """Answers /health with OK and every API call with 500, like a server whose database is gone."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        code = 200 if self.path.startswith("/health") else 500
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"OK" if code == 200 else b"internal error")

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def broken_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthyButBroken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_broken_server_fails_in_seconds_in_one_line(project: Path, broken_server: str) -> None:
    started = time.monotonic()
    done = rsitr("train", "--params", str(project), "--variant", "finetune", "--set", f"tracking.uri={broken_server}")
    assert time.monotonic() - started < 60
    assert "answered 500 on the experiments API" in one_line_error(done)


def test_a_file_store_uri_is_one_line(project: Path, tmp_path: Path) -> None:
    done = rsitr("train", "--params", str(project), "--variant", "finetune", "--set",
                 f"tracking.uri=file://{tmp_path / 'mlruns'}")
    assert "file store" in one_line_error(done) and "sqlite" in one_line_error(done)


def test_resume_with_another_tracking_uri_is_one_line(project: Path, tmp_path: Path) -> None:
    from rsitr.app.core.fingerprint import train_fingerprint

    params = load_params(project)
    mark_active(params, "finetune", "0123456789abcdef0123456789abcdef", train_fingerprint(params, "finetune"))
    done = rsitr("train", "--params", str(project), "--variant", "finetune", "--resume")
    assert "is not in the tracking store" in one_line_error(done)


@pytest.mark.parametrize("which", ["best", "last"])
def test_a_truncated_checkpoint_is_one_line(project: Path, which: str) -> None:
    params = load_params(project)
    run_train(params, "finetune", track=False, progress=False)
    paths = ProjectPaths.of(params)
    path = paths.best_checkpoint("finetune") if which == "best" else paths.last_checkpoint("finetune")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    command = ("evaluate", "--no-track") if which == "best" else ("train", "--resume", "--no-track")
    done = rsitr(command[0], "--params", str(project), "--variant", "finetune", *command[1:])
    line = one_line_error(done)
    assert "is unreadable" in line and path.name in line and "train again" in line
