"""``rsitr benchmark``: run the Prefect benchmark flow on this machine (``make run`` does).

Without ``PREFECT_API_URL`` Prefect starts an ephemeral API server for the run; its
results and cache records go to ``.prefect/storage`` inside the repository (git-ignored),
so a fresh clone never reuses another checkout's cache. Against a Prefect server, deploy
the flows instead (``pipelines/README.md``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rsitr.cli.common import add_params_options, load, print_json

PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",  # a 2-core machine starts the API slowly
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
}


def prefect_environment(root: Path) -> None:
    """Defaults for a local run, before Prefect is imported; the user's settings win."""
    for key, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(key, value)
    extra = [n for n in os.environ.get("PREFECT_LOGGING_EXTRA_LOGGERS", "").split(",") if n.strip()]
    os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = ",".join(extra + ([] if "rsitr" in extra else ["rsitr"]))  # rsitr's lines in Prefect
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str((root / ".prefect" / "storage").resolve()))


def cmd_benchmark(args: argparse.Namespace) -> None:
    params = load(args)  # a bad params file or override fails here, in one line, before Prefect starts
    prefect_environment(Path.cwd())
    from rsitr.app.flows import benchmark

    ablations = [v.name for v in params.variants.values() if v.benchmark == "ablations"] if args.ablations else []
    variants = list(args.variant or []) + ablations
    result = benchmark(variants=variants or None, overrides=args.overrides, params_path=args.params,
                       register_models=not args.no_register, check_data=not args.no_check_data)
    print_json({"leaderboard": result["leaderboard"]["markdown"], "seconds": result["seconds"],
                "variants": {v: sorted(k for k in o if k != "failed") for v, o in result["variants"].items()}})


def register(commands: Any) -> None:
    sub = commands.add_parser("benchmark", help="run the Prefect benchmark flow here: keywords, train, evaluate, "
                                                "c2f, register, leaderboard (skips what is up to date)")
    add_params_options(sub)
    sub.add_argument("--variant", action="append", help="only these variants (repeatable; default: the variants with benchmark: default)")
    sub.add_argument("--ablations", action="store_true",
                     help="run the variants with benchmark: ablations (the rsitr options against the paper-exact variants)")
    sub.add_argument("--no-register", action="store_true", help="do not register models in MLflow")
    sub.add_argument("--no-check-data", action="store_true", help="do not check `dvc status` first")
    sub.set_defaults(handler=cmd_benchmark)
