"""``rsitr config show``, ``describe``, ``keywords``, ``train``, ``evaluate``, ``eba-report``, ``summary``."""

from __future__ import annotations

import argparse
from typing import Any

from rsitr.cli.common import add_params_options, add_variant_command, load, print_json
from rsitr.errors import ConfigError


def cmd_config_show(args: argparse.Namespace) -> None:
    import yaml

    from rsitr.config import to_dict

    tree = to_dict(load(args))
    if args.format == "json":
        print_json(tree)
    else:
        print(yaml.safe_dump(tree, sort_keys=False, allow_unicode=True), end="")


def cmd_describe(args: argparse.Namespace) -> None:
    from rsitr.models import build_model
    from rsitr.models.describe import describe_model

    print_json(describe_model(build_model(load(args), args.variant, load_weights=False)))


def cmd_keywords(args: argparse.Namespace) -> None:
    from rsitr.app.steps.keywords import run_keywords

    print_json(run_keywords(load(args)))


def cmd_train(args: argparse.Namespace) -> None:
    from rsitr.app.steps.training import run_train

    if args.resume_lr is not None and not args.resume:
        raise ConfigError("--resume-lr changes the learning rate of a resumed run; add --resume")
    summary = run_train(load(args), args.variant, resume=args.resume, track=not args.no_track,
                        resume_lr=args.resume_lr)
    print_json({k: v for k, v in summary.items() if k != "final"})


def cmd_evaluate(args: argparse.Namespace) -> None:
    from rsitr.app.steps.evaluation import run_evaluate

    run_evaluate(load(args), args.variant, track=not args.no_track)


def cmd_eba_report(args: argparse.Namespace) -> None:
    from rsitr.app.steps.eba import elimination_report

    report = elimination_report(load(args), args.variant, args.ground_truth)
    print_json({k: v for k, v in report.items() if k != "eliminated"})


def cmd_summary(args: argparse.Namespace) -> None:
    from rsitr.app.steps.summary import print_summary

    print_summary(load(args), curves=args.curves)


def register(commands: Any) -> None:
    config = commands.add_parser("config", help="inspect the resolved configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    show = config_sub.add_parser("show", help="print the resolved params (after --set overrides)")
    add_params_options(show)
    show.add_argument("--format", choices=["yaml", "json"], default="yaml")
    show.set_defaults(handler=cmd_config_show)

    add_variant_command(commands, "describe", "build a variant without weights and print its parameter counts",
                        cmd_describe)
    keywords = commands.add_parser("keywords", help="top-k train-caption keywords (models/keywords/), for KER")
    add_params_options(keywords)
    keywords.set_defaults(handler=cmd_keywords)
    train = add_variant_command(commands, "train", "train a variant (checkpoints in models/<variant>/, MLflow run)",
                                cmd_train)
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run (models/<variant>/staging/last.pt, same MLflow run)")
    train.add_argument("--resume-lr", type=float, default=None, metavar="LR",
                       help="with --resume: continue with this base learning rate (e.g. after a NaN)")
    train.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    evaluate = add_variant_command(commands, "evaluate", "evaluate a variant's best checkpoint on every test set",
                                   cmd_evaluate)
    evaluate.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    eba = add_variant_command(commands, "eba-report",
                              "EBA's eliminated captions against the planted weak captions (precision, recall)",
                              cmd_eba_report)
    eba.add_argument("--ground-truth", default="data/raw/synth/ground_truth.json")
    summary = commands.add_parser("summary", help="print where the results of the last run are")
    add_params_options(summary)
    summary.add_argument("--curves", action="store_true",
                         help="also print each variant's validation curve (val mR per epoch)")
    summary.set_defaults(handler=cmd_summary)
