"""The ``rsitr`` command line: argument parsing over the application (``rsitr.app``).

Every command accepts ``--params PATH`` and repeated ``--set section.key=value``
overrides (the same dotted keys as ``dvc exp run -S``). A ``RsitrError`` becomes a
one-line message on stderr and exit code 2, never a traceback. Handlers import the
application lazily, so ``rsitr config show`` starts without loading torch.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rsitr.cli import data, model, pipeline, retrieval, tracking
from rsitr.errors import RsitrError

COMMAND_GROUPS = (model, data, pipeline, retrieval, tracking)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsitr", description="Remote-sensing image-text retrieval: data, training, evaluation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.handler(args)
    except RsitrError as exc:
        print(f"rsitr: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rsitr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`
        sys.stderr.close()
        return 0
    return int(code or 0)
