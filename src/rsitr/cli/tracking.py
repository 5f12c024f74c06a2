"""``rsitr register``, ``promote``, ``leaderboard`` and ``report``: the model registry and results.

Exit codes: 0 success (``promote``: promoted or already champion), 1 promotion refused by
the gate (the one-line message names both figures), 2 any ``RsitrError`` (unknown variant,
no challenger, no metric, unreachable tracking server).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rsitr.cli.common import add_params_options, add_variant_command, load

REFUSED_EXIT_CODE = 1


def cmd_register(args: argparse.Namespace) -> int:
    from rsitr.app.steps.registry import register_variant

    result = register_variant(load(args), args.variant, run_id=args.run_id)
    state = "already registered as" if result.reused else "registered as"
    print(f"{args.variant}: run {result.run_id} {state} {result.name} v{result.version} (alias challenger)")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from rsitr.tracking.registry import promote

    decision = promote(load(args), args.variant, force=args.force, reason=args.reason)
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
    if decision.status == "refused":
        print(f"rsitr: promotion refused: {decision.message}", file=sys.stderr)
        return REFUSED_EXIT_CODE
    if not args.json:
        print(decision.message)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from rsitr.app.steps.leaderboard import run_leaderboard

    files = run_leaderboard(load(args), all_runs=args.all_runs, variants=args.variant or ())
    print(f"leaderboard: {files.markdown} and {files.csv} ({files.measured_rows} measured rows: "
          f"{', '.join(files.models) or 'none'}; {files.reported_rows} reported rows); "
          f"claims: {files.claims} ({files.claim_rows} rows)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rsitr.app.steps.reports import write_retrieval_report

    files = write_retrieval_report(load(args), args.variant, args.test_set, args.language, queries=args.queries,
                                   k=args.top_k, seed=args.seed, track=not args.no_track)
    print(f"retrieval report: {files.html} and {files.png}" + (f" (attached to run {files.run_id})" if files.run_id else ""))
    return 0


def register(commands: Any) -> None:
    sub = add_variant_command(commands, "register",
                              "register a variant's run as an MLflow model version (alias challenger)", cmd_register)
    sub.add_argument("--run-id", help="MLflow run to register (default: models/<variant>/run.json)")

    sub = commands.add_parser(
        "promote", help="move alias champion to the challenger if it beats the champion by promotion.margin",
        description="Gate: the challenger's test.<promotion.test_set>.<promotion.language>.<promotion.metric> must "
                    "exceed the champion's by at least promotion.margin, on the same data version. "
                    "Exit 0 promoted, 1 refused, 2 error.",
    )
    add_params_options(sub)
    sub.add_argument("--variant", required=True)
    sub.add_argument("--force", action="store_true", help="skip the gate (the reason is recorded in version tags)")
    sub.add_argument("--reason", default="", help="why --force is used (recorded as promotion.reason)")
    sub.add_argument("--json", action="store_true", help="print the decision as JSON")
    sub.set_defaults(handler=cmd_promote)

    sub = commands.add_parser("leaderboard", help="write reports/leaderboard.md, .csv and claims.csv from MLflow runs")
    add_params_options(sub)
    sub.add_argument("--all-runs", action="store_true", help="every finished run, not only the latest per variant")
    sub.add_argument("--variant", action="append", help="only these variants (repeatable)")
    sub.set_defaults(handler=cmd_leaderboard)

    sub = add_variant_command(commands, "report", "HTML + PNG of top-k retrieval results for sampled queries",
                              cmd_report)
    sub.add_argument("--test-set", required=True)
    sub.add_argument("--language", default="en")
    sub.add_argument("--queries", type=int, default=4, help="queries per direction (default 4)")
    sub.add_argument("--top-k", type=int, default=5)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--no-track", action="store_true", help="do not attach the files to the variant's MLflow run")
