"""The ``rsitr`` console script: config errors exit 2 with a one-line message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rsitr.config import METHODS

REPO = Path(__file__).resolve().parents[1]


def _rsitr(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsitr.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_config_show_prints_resolved_overrides():
    result = _rsitr("config", "show", "--format", "json", "--set", "train.epochs=2")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["train"]["epochs"] == 2


def test_bad_config_exits_2_naming_key_and_choices():
    for override, expected in [
        ("train.epoch=3", "valid keys of train"),
        ("train.epochs=x", "train.epochs: expected an integer"),
        ("variants.finetune.method=magic", "valid methods: " + ", ".join(sorted(METHODS))),
        ("variants.ebaker.options.drop_epoch=abc", "variants.ebaker.options.drop_epoch: expected an integer"),
        ("variants.ebaker.options.local_normalize=maybe",
         "variants.ebaker.options.local_normalize: expected true or false"),
        ("variants.ebaker.options.scope=all", "variants.ebaker.options.scope: 'all' is not allowed"),
        ("variants.petl.options.typo=1", "unknown key 'variants.petl.options.typo'"),
        ("train.accumulation_steps=2", "train.accumulation_steps: gradient accumulation is not supported"),
    ]:
        result = _rsitr("config", "show", "--set", override)
        assert result.returncode == 2, (override, result.stderr)
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


def test_missing_params_file_is_a_clear_error(tmp_path):
    result = _rsitr("config", "show", "--params", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_synth_command_is_deterministic_across_runs(tmp_path):
    import hashlib

    def digest(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    # two separate processes (a fresh interpreter each: hash seeds, import order), run side by side
    runs = [subprocess.Popen([sys.executable, "-m", "rsitr.cli", "synth", "--out", str(tmp_path / name), "--images",
                              "200", "--seed", "1"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name in ("a", "b")]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    first, second = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert first == second and len(first) > 200
    assert any(k.endswith("ground_truth.json") for k in first)
    assert any(k.endswith("dataset.json") for k in first) and any(k.endswith("test_filename.txt") for k in first)


def test_a_forked_worker_dies_on_sigterm_while_the_cli_process_unwinds():
    """Pool.terminate() SIGTERMs forked workers: they must die, not raise inside multiprocessing's shutdown."""
    import os
    import signal
    import time

    import rsitr.cli as cli
    from rsitr.errors import Terminated

    previous = signal.signal(signal.SIGTERM, cli._terminate)
    cli._HANDLER_PID.append(os.getpid())
    try:
        pid = os.fork()
        if pid == 0:  # the worker: sleeping, as a pool worker waits for tasks
            try:
                time.sleep(30)
            except BaseException:  # the inherited handler raised: the hang's cause
                os._exit(3)
            os._exit(0)
        time.sleep(0.3)
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
        try:
            cli._terminate(signal.SIGTERM, None)
        except Terminated:
            pass
        else:
            raise AssertionError("the CLI process itself must unwind with Terminated")
    finally:
        cli._HANDLER_PID.pop()
        signal.signal(signal.SIGTERM, previous)


def test_a_log_line_is_printed_once_when_prefect_also_prints_rsitr_lines(capsys) -> None:
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    from rsitr.cli import configure_logging

    configure_logging()
    logger = logging.getLogger("rsitr.training.trainer")
    logger.info("before prefect")
    assert capsys.readouterr().err.count("before prefect") == 1
    import io

    prefect_stream = io.StringIO()
    prefect_console = PrefectConsoleHandler(stream=prefect_stream)
    logging.getLogger("rsitr").addHandler(prefect_console)  # what PREFECT_LOGGING_EXTRA_LOGGERS=rsitr does
    try:
        logger.info("under prefect")
        assert "under prefect" not in capsys.readouterr().err  # rsitr's own handler stays quiet ...
        assert prefect_stream.getvalue().count("under prefect") == 1  # ... and Prefect's prints it
    finally:
        logging.getLogger("rsitr").removeHandler(prefect_console)
