"""``rsitr pretrain [--resume]``: continual CLIP pretraining on a caption corpus (``models/foundation/``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rsitr.cli.common import add_params_options, load, print_json


def cmd_pretrain(args: argparse.Namespace) -> None:
    from rsitr.app.steps.pretrain import run_pretrain

    summary = run_pretrain(load(args), resume=args.resume, track=not args.no_track,
                           register=not args.no_register and not args.no_track)
    print_json(summary)
    print(f"foundation model: {summary['checkpoint']} (use it with --set model.pretrained={summary['checkpoint']})",
          file=sys.stderr)


def register(commands: Any) -> None:
    sub = commands.add_parser("pretrain", help="continual CLIP pretraining on pretrain.corpus -> "
                                               "models/foundation/foundation.pt (MLflow run, rsitr-foundation)")
    add_params_options(sub)
    sub.add_argument("--resume", action="store_true", help="continue an interrupted pretraining from its last.pt")
    sub.add_argument("--no-track", action="store_true", help="no MLflow run (and no registration)")
    sub.add_argument("--no-register", action="store_true", help="track, but do not register rsitr-foundation")
    sub.set_defaults(handler=cmd_pretrain)
