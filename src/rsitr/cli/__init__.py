"""The ``rsitr`` command line: argument parsing over the application (``rsitr.app``).

Every command accepts ``--params PATH`` and repeated ``--set section.key=value``
overrides (the same dotted keys as ``dvc exp run -S``). A ``RsitrError`` becomes a
one-line message on stderr and exit code 2, never a traceback. Handlers import the
application lazily, so ``rsitr config show`` starts without loading torch.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from rsitr.cli import data, model, pipeline, retrieval, tracking
from rsitr.cli import pretrain
from rsitr.errors import RsitrError, Terminated

COMMAND_GROUPS = (model, data, pipeline, retrieval, tracking, pretrain)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsitr", description="Remote-sensing image-text retrieval: data, training, evaluation.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (also RSITR_DEBUG=1)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def _version() -> str:
    """The installed distribution's version (pyproject.toml is the one source, as for ``rsitr.__version__``)."""
    try:
        return version("rsitr")
    except PackageNotFoundError:
        return "0+unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    debug = args.debug or os.environ.get("RSITR_DEBUG") == "1"
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None  # unwinds like Ctrl-C
    _HANDLER_PID.append(os.getpid())
    try:
        return _run(args, debug)
    finally:
        _HANDLER_PID.pop()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at each record (a redirected or captured stderr too)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        # Under `rsitr benchmark`, Prefect's console handler prints rsitr's lines (PREFECT_LOGGING_EXTRA_LOGGERS): once is enough.
        if not any(type(h).__name__ == "PrefectConsoleHandler" for h in logging.getLogger("rsitr").handlers):
            super().emit(record)


def configure_logging(level: int = logging.INFO) -> None:
    """rsitr's progress lines (module loggers under ``rsitr``) on stderr, once; stdout stays for JSON output."""
    logger = logging.getLogger("rsitr")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logging.captureWarnings(True)


def _run(args: argparse.Namespace, debug: bool) -> int:
    """The handler, with every failure turned into one line and an exit code."""
    try:
        code = args.handler(args)
    except RsitrError as exc:
        if debug:
            raise
        print(f"rsitr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        _end_open_runs()
        print("rsitr: interrupted; what finished is kept (a training resumes with --resume)", file=sys.stderr)
        return 130
    except Terminated:
        _end_open_runs()
        print("rsitr: terminated (SIGTERM); what finished is kept (a training resumes with --resume)", file=sys.stderr)
        return 143
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug shows the traceback
        if debug:
            raise
        print(f"rsitr: error: {type(exc).__name__}: {_first_line(exc)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1
    return int(code or 0)


def _end_open_runs() -> None:
    """MLflow runs still open in other threads (Prefect tasks) are marked KILLED, not left RUNNING."""
    tracking = sys.modules.get("rsitr.tracking.mlflow_tracking")
    if tracking is not None:
        tracking.end_open_runs("KILLED")


_HANDLER_PID: list[int] = []  # the process whose SIGTERM unwinds; forked workers inherit the handler


def _terminate(signum: int, frame: object) -> None:
    if _HANDLER_PID and os.getpid() != _HANDLER_PID[-1]:
        # A forked worker (a multiprocessing pool being terminated): die as SIGTERM's default action would,
        # instead of raising inside multiprocessing's own shutdown code, which can leave the pool hanging.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise Terminated(f"signal {signum}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no message"
