"""``python -m rsitr.data.synth_corpus``: generate the synthetic caption corpus from the shell.

A stand-in until ``rsitr synth-corpus`` is wired into ``rsitr.cli``; it takes the
same options that command would. Errors print as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from rsitr.data.synth_corpus.generator import CorpusOptions, generate_corpus
from rsitr.errors import RsitrError

logger = logging.getLogger(__name__)


def parse_args(argv: "list[str] | None" = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m rsitr.data.synth_corpus",
                                     description="generate a synthetic web-style image-caption corpus")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--images", type=int, default=10_000, help="number of images (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 96), metavar=("MIN", "MAX"))
    parser.add_argument("--wrong-caption-rate", type=float, default=0.05)
    parser.add_argument("--noise-word-rate", type=float, default=0.25)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="render processes (output does not depend on it)")
    return parser.parse_args(argv)


def main(argv: "list[str] | None" = None) -> int:
    args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)  # a command: its lines on stderr
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return _generate(args)
    finally:
        logger.removeHandler(handler)


def _generate(args: argparse.Namespace) -> int:
    try:
        options = CorpusOptions(image_size=tuple(args.image_size), wrong_caption_rate=args.wrong_caption_rate,
                                noise_word_rate=args.noise_word_rate, shard_size=args.shard_size,
                                workers=args.workers)
        report = generate_corpus(args.out, args.images, args.seed, options)
    except RsitrError as exc:
        logger.error(f"error: {exc}")
        return exc.exit_code
    logger.info(f"corpus of {report['n_images']} images ({report['n_shards']} shards) written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
