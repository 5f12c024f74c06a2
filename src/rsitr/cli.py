"""The ``rsitr`` command line: a thin layer of argument parsing over library functions.

Every command accepts ``--params PATH`` and repeated ``--set section.key=value``
overrides (the same dotted keys as ``dvc exp run -S``). A ``RsitrError`` becomes a
one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rsitr.errors import RsitrError

Handler = Callable[[argparse.Namespace], int | None]


def _load(args: argparse.Namespace):
    from rsitr.config import load_params

    return load_params(args.params, args.overrides)


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False, default=str))


# ----------------------------------------------------------------------------- commands


def cmd_config_show(args: argparse.Namespace) -> None:
    import yaml

    from rsitr.config import to_dict

    params = _load(args)
    tree = to_dict(params)
    if args.format == "json":
        _print_json(tree)
    else:
        print(yaml.safe_dump(tree, sort_keys=False, allow_unicode=True), end="")


def cmd_synth(args: argparse.Namespace) -> None:
    from rsitr.data.synth import generate_benchmark

    params = _load(args)
    synth = params.synth
    out = Path(args.out or synth.out)
    summary = generate_benchmark(
        out,
        n_images=args.images if args.images is not None else synth.images,
        seed=args.seed if args.seed is not None else synth.seed,
        image_size=tuple(synth.image_size),
        twin_rate=synth.twin_rate,
        weak_caption_rate=synth.weak_caption_rate,
        near_duplicate_rate=synth.near_duplicate_rate,
        karpathy_share=synth.karpathy_share,
        test_share=synth.test_share,
        arabic=synth.arabic,
    )
    _print_json(summary)
    print(f"synthetic benchmark written to {out}", file=sys.stderr)


def cmd_data_inspect(args: argparse.Namespace) -> None:
    from rsitr.data.inspect import inspect_dataset

    _print_json(inspect_dataset(args.format, args.root, args.images, workers=args.workers))


def _stage(name: str) -> Handler:
    def run(args: argparse.Namespace) -> None:
        from rsitr.data import stages

        _print_json(getattr(stages, f"run_{name}")(_load(args)))

    return run


def cmd_describe(args: argparse.Namespace) -> None:
    from rsitr.models import build_model
    from rsitr.models.describe import describe_model

    params = _load(args)
    _print_json(describe_model(build_model(params, args.variant, load_weights=False)))


def cmd_train(args: argparse.Namespace) -> None:
    from rsitr.training.stages import run_train

    summary = run_train(_load(args), args.variant, resume=args.resume, track=not args.no_track)
    _print_json({k: v for k, v in summary.items() if k != "final"})


def cmd_evaluate(args: argparse.Namespace) -> None:
    from rsitr.training.stages import run_evaluate

    run_evaluate(_load(args), args.variant, track=not args.no_track)


def cmd_summary(args: argparse.Namespace) -> None:
    from rsitr.reporting import print_summary

    print_summary(_load(args))


# ----------------------------------------------------------------------------- parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params value, e.g. --set train.epochs=3 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rsitr", description="Remote-sensing image-text retrieval: data, training, evaluation.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="inspect the resolved configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    show = config_sub.add_parser("show", help="print the resolved params (after --set overrides)")
    _common(show)
    show.add_argument("--format", choices=["yaml", "json"], default="yaml")
    show.set_defaults(handler=cmd_config_show)

    synth = commands.add_parser("synth", help="generate the embedded synthetic benchmark in real on-disk formats")
    _common(synth)
    synth.add_argument("--out", help="output folder (default: synth.out)")
    synth.add_argument("--images", type=int, help="number of distinct images (default: synth.images)")
    synth.add_argument("--seed", type=int, help="random seed (default: synth.seed)")
    synth.set_defaults(handler=cmd_synth)

    data = commands.add_parser("data", help="data stages: inspect a download, ingest, dedup, split, keywords")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    inspect = data_sub.add_parser("inspect", help="check a benchmark download (annotations, images) and print JSON")
    inspect.add_argument("--format", required=True, help="precomp | karpathy | nwpu | csv")
    inspect.add_argument("--root", required=True, help="folder holding the annotation files")
    inspect.add_argument("--images", help="images folder (default: the format's usual place under --root)")
    inspect.add_argument("--workers", type=int, default=2)
    inspect.set_defaults(handler=cmd_data_inspect)
    for stage, text in [
        ("ingest", "read every dataset in params into one verified manifest (rejected.csv lists bad items)"),
        ("dedup", "pHash every image and cluster near-duplicates across datasets"),
        ("split", "leakage-free train/val/test splits that keep the official test sets"),
        ("keywords", "top-k keywords of the train captions, per dataset and language"),
    ]:
        sub = data_sub.add_parser(stage, help=text)
        _common(sub)
        sub.set_defaults(handler=_stage(stage))

    describe = commands.add_parser("describe", help="build a variant without weights and print its parameter counts")
    _common(describe)
    describe.add_argument("--variant", required=True)
    describe.set_defaults(handler=cmd_describe)

    train = commands.add_parser("train", help="train a variant (checkpoints in models/<variant>/, MLflow run)")
    _common(train)
    train.add_argument("--variant", required=True)
    train.add_argument("--resume", action="store_true", help="continue from models/<variant>/last.pt")
    train.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="evaluate a variant's best checkpoint on every test set")
    _common(evaluate)
    evaluate.add_argument("--variant", required=True)
    evaluate.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    evaluate.set_defaults(handler=cmd_evaluate)

    summary = commands.add_parser("summary", help="print where the results of the last run are")
    _common(summary)
    summary.set_defaults(handler=cmd_summary)

    from rsitr.retrieval.cli_commands import register as register_retrieval_commands
    from rsitr.tracking.cli_commands import register as register_tracking_commands

    register_retrieval_commands(commands)
    register_tracking_commands(commands)
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


if __name__ == "__main__":
    sys.exit(main())
