"""``rsitr synth``, ``rsitr synth-corpus`` and ``rsitr data {inspect,ingest,dedup,split}``: the data commands (DVC stages)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rsitr.cli.common import add_params_options, load, print_json

STAGE_HELP = {
    "ingest": "read every dataset in params into one verified manifest (rejected.csv lists bad items)",
    "dedup": "pHash every image and cluster near-duplicates across datasets",
    "split": "leakage-free train/val/test splits that keep the official test sets",
}


def cmd_synth(args: argparse.Namespace) -> None:
    from rsitr.app.steps.data import run_synth

    params = load(args)
    print_json(run_synth(params, out=args.out, images=args.images, seed=args.seed))
    print(f"synthetic benchmark written to {args.out or params.synth.out}", file=sys.stderr)


def cmd_synth_corpus(args: argparse.Namespace) -> None:
    from rsitr.app.steps.data import run_synth_corpus

    params = load(args)
    report = run_synth_corpus(params, out=args.out, images=args.images, seed=args.seed)
    print_json({k: v for k, v in report.items() if k != "wrong_caption_keys"})
    print(f"caption corpus written to {args.out or params.synth_corpus.out}", file=sys.stderr)


def cmd_data_inspect(args: argparse.Namespace) -> None:
    from rsitr.data.inspect import inspect_dataset

    print_json(inspect_dataset(args.format, args.root, args.images, workers=args.workers))


def _stage_handler(name: str):
    def run(args: argparse.Namespace) -> None:
        from rsitr.app.steps.data import DATA_STAGES

        print_json(DATA_STAGES[name](load(args)))

    return run


def register(commands: Any) -> None:
    synth = commands.add_parser("synth", help="generate the embedded synthetic benchmark in real on-disk formats")
    add_params_options(synth)
    synth.add_argument("--out", help="output folder (default: synth.out)")
    synth.add_argument("--images", type=int, help="number of distinct images (default: synth.images)")
    synth.add_argument("--seed", type=int, help="random seed (default: synth.seed)")
    synth.set_defaults(handler=cmd_synth)

    corpus = commands.add_parser("synth-corpus", help="generate the synthetic image-caption corpus for `rsitr pretrain`")
    add_params_options(corpus)
    corpus.add_argument("--out", help="output folder (default: synth_corpus.out)")
    corpus.add_argument("--images", type=int, help="number of images (default: synth_corpus.images)")
    corpus.add_argument("--seed", type=int, help="random seed (default: synth_corpus.seed)")
    corpus.set_defaults(handler=cmd_synth_corpus)

    data = commands.add_parser("data", help="data stages: inspect a download, ingest, dedup, split")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    inspect = data_sub.add_parser("inspect", help="check a benchmark download (annotations, images) and print JSON")
    inspect.add_argument("--format", required=True, help="precomp | karpathy | nwpu | csv")
    inspect.add_argument("--root", required=True, help="folder holding the annotation files")
    inspect.add_argument("--images", help="images folder (default: the format's usual place under --root)")
    inspect.add_argument("--workers", type=int, default=2)
    inspect.set_defaults(handler=cmd_data_inspect)
    for stage, text in STAGE_HELP.items():
        sub = data_sub.add_parser(stage, help=text)
        add_params_options(sub)
        sub.set_defaults(handler=_stage_handler(stage))
