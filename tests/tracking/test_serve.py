"""Slow: the promoted champion serves over HTTP with ``mlflow models serve``, from outside the repository.

The registered version is an MLflow logged model carrying rsitr's code (``code_paths``), its
weights and config; the scoring server is started in an empty folder elsewhere, with only
the tracking URI, and must answer a text query with an L2-normalised embedding.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from rsitr.app.steps.registry import register_variant
from rsitr.config import load_params
from rsitr.tracking.registry import promote


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(port: int, payload: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_champion_serves_a_text_query_from_outside_the_repository(trained_toy_stock: Path, tmp_path: Path) -> None:
    params = load_params(trained_toy_stock, ["tracking.model_prefix=serve"])
    registration = register_variant(params, "finetune")
    assert promote(params, "finetune").promoted
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": params.tracking.uri, "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(["mlflow", "models", "serve", "-m", "models:/serve-finetune@champion",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=elsewhere, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(2)
        answer = _post(port, {"dataframe_records": [{"text": "a plain red field"}]})
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    vector = np.array(answer["predictions"][0]["text_embedding"], dtype=np.float32)
    assert vector.ndim == 1 and vector.size > 0
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)
    assert registration.model_id  # registered from an MLflow logged model
