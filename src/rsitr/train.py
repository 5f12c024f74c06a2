"""``python -m rsitr.train``: the training entry point torchrun launches.

    torchrun --nproc_per_node 4 -m rsitr.train --variant ebaker --set train.batch_size=100
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \\
        -m rsitr.train --variant petl

Every rank reads the same params file; ``train.batch_size`` is per rank (the global batch
is ``nproc * nnodes * batch_size``). Only rank 0 logs to MLflow and writes checkpoints.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import torch.distributed as dist

from rsitr.app.steps.training import run_train
from rsitr.cli import configure_logging
from rsitr.config import load_params
from rsitr.errors import RsitrError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rsitr.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--no-track", action="store_true")
    args = parser.parse_args(argv)
    configure_logging()  # progress lines on stderr, which the flow forwards to Prefect (run_logged)
    try:
        params = load_params(args.params, args.overrides)
        run_train(params, args.variant, resume=args.resume, track=not args.no_track)
    except RsitrError as exc:
        print(f"rsitr: error (rank {os.environ.get('RANK', '0')}): {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
