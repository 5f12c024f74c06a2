"""Helpers every ``rsitr`` subcommand shares: ``--params`` / ``--set`` and JSON output."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rsitr.config import RsitrParams, load_params
import rsitr.methods  # noqa: F401 - registers the built-in methods before any params are read


def add_params_options(parser: argparse.ArgumentParser) -> None:
    """``--params PATH`` and repeated ``--set section.key=value`` (the keys of ``dvc exp run -S``)."""
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params value, e.g. --set train.epochs=3 (repeatable)",
    )


def load(args: argparse.Namespace) -> RsitrParams:
    return load_params(args.params, args.overrides)


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False, default=str))


def add_variant_command(commands: Any, name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
    """A subcommand with the params options and a required ``--variant``."""
    sub = commands.add_parser(name, help=help_text)
    add_params_options(sub)
    sub.add_argument("--variant", required=True)
    sub.set_defaults(handler=handler)
    return sub
