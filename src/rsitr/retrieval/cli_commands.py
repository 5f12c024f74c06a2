"""``rsitr index build``, ``rsitr search`` and ``rsitr c2f ...``: coarse-to-fine retrieval commands.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024). ``register(commands)`` adds the
subcommands to the ``commands`` subparsers of ``rsitr.cli.build_parser``::

    rsitr c2f train    --variant V      hash heads -> models/V/hash_heads.pt
    rsitr c2f evaluate --variant V      -> metrics/c2f/V/<test_set>.json
    rsitr c2f run      --variant V      train, then evaluate
    rsitr index build  --model V|models:/name@alias --images DIR --out INDEX [--chunk-size N]
    rsitr search       --index INDEX "text query" | --image PATH  [--top-k 10] [--json]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]


def _helpers():
    from rsitr.cli import _common, _load, _print_json

    return _common, _load, _print_json


def _device(params: Any, variant: str | None, requested: str | None):
    from rsitr.training.trainer import resolve_device

    if requested:
        return resolve_device(requested)
    if variant is not None and variant in params.variants:
        return resolve_device(params.variant(variant).train.device)
    return resolve_device("auto")


# ----------------------------------------------------------------------------- handlers


def cmd_c2f_train(args: argparse.Namespace) -> None:
    from rsitr.retrieval.coarse_to_fine import run_c2f_train

    _, _load, _print_json = _helpers()
    summary = run_c2f_train(_load(args), args.variant)
    _print_json({k: v for k, v in summary.items() if k != "history"} | {"final": summary["history"][-1] if summary["history"] else {}})


def cmd_c2f_evaluate(args: argparse.Namespace) -> None:
    from rsitr.retrieval.coarse_to_fine import run_c2f_evaluate

    run_c2f_evaluate(_helpers()[1](args), args.variant)


def cmd_c2f_run(args: argparse.Namespace) -> None:
    from rsitr.retrieval.coarse_to_fine import run_c2f_evaluate, run_c2f_train

    params = _helpers()[1](args)
    if not params.c2f.enabled:
        print(f"c2f.enabled is false: skipping coarse-to-fine for {args.variant}", file=sys.stderr)
        return
    run_c2f_train(params, args.variant)
    run_c2f_evaluate(params, args.variant)


def cmd_index_build(args: argparse.Namespace) -> None:
    from rsitr.retrieval.index import build_index, list_images, load_model_and_heads, resolve_model_ref, sha256_file

    _, _load, _print_json = _helpers()
    params = _load(args)
    from pathlib import Path

    from rsitr.errors import DataError
    from rsitr.retrieval.index import BUILD_DIR, INDEX_FILE

    out_dir = Path(args.out)
    if (out_dir / INDEX_FILE).exists() and not (out_dir / BUILD_DIR).exists() and not args.force:
        raise DataError(f"index {args.out!r} already exists; pass --force to rebuild it")
    ids, paths = list_images(args.images)  # fails fast on an empty or missing folder
    ref = resolve_model_ref(params, args.model)
    device = _device(params, ref.variant, args.device)
    model, heads, meta = load_model_and_heads(params, ref, device)
    checkpoint_sha = sha256_file(ref.checkpoint)
    if meta.get("checkpoint_sha256") not in (None, checkpoint_sha):
        from rsitr.errors import ModelError

        raise ModelError(
            f"hash heads {str(ref.hash_heads)!r} were trained on another checkpoint than {str(ref.checkpoint)!r}; "
            f"re-run `rsitr c2f train --variant {ref.variant}`"
        )
    eval_params = params.variants[ref.variant].eval if ref.variant in params.variants else params.eval
    out = build_index(
        model, heads, paths, args.out, ids=ids,
        chunk_size=args.chunk_size, batch_size=args.batch_size or eval_params.batch_size,
        ppsr_k=params.c2f.ppsr_k, device=device, force=args.force, progress=not args.no_progress,
        model_info={
            "uri": ref.uri, "variant": ref.variant, "arch": params.model.arch,
            "checkpoint": str(ref.checkpoint.resolve()), "checkpoint_sha256": checkpoint_sha,
        },
    )
    from rsitr.retrieval.index import GalleryIndex

    index = GalleryIndex.load(out)
    _print_json({"index": str(out), "items": len(index), "bits": index.bits,
                 "embeddings": index.manifest["embeddings"], "build_seconds": index.manifest["build_seconds"]})


def cmd_search(args: argparse.Namespace) -> None:
    from pathlib import Path

    from rsitr.errors import ConfigError, ModelError
    from rsitr.retrieval.index import GalleryIndex
    from rsitr.retrieval.search import search_index
    from rsitr.training.checkpoint import load_trained_model

    _, _load, _print_json = _helpers()
    if (args.query is None) == (args.image is None):
        raise ConfigError("give either a text query or --image PATH (not both)")
    params = _load(args)
    index = GalleryIndex.load(args.index)
    info = index.manifest["model"]
    variant = info.get("variant")
    if not variant:
        raise ModelError(f"index {args.index!r} does not name the model it was built with")
    device = _device(params, variant, args.device)
    checkpoint = Path(info["checkpoint"])
    model = load_trained_model(params, variant, checkpoint).to(device).eval()
    heads, _ = index.load_heads()
    c2f = params.c2f
    result = search_index(
        index, model, heads.to(device), text=args.query, image=args.image, top_k=args.top_k,
        candidates=args.candidates or c2f.candidates, use_ppsr=c2f.ppsr and not args.no_ppsr,
        ppsr_k=c2f.ppsr_k, coarse_only=c2f.coarse_only or args.coarse_only, device=device,
    )
    if args.json:
        _print_json(result)
        return
    print(f"{result['mode']} query: {result['query']!r}  ({len(index)} items, {result['candidates']} candidates, "
          f"ppsr {'on' if result['ppsr'] else 'off'}, {result['timings_ms']['total']:.1f} ms)")
    for item in result["results"]:
        print(f"{item['rank']:>3}  {item['score']:+.4f}  (coarse {item['coarse']:+.3f})  {item['id']}")


# ----------------------------------------------------------------------------- parser


def register(commands: Any) -> None:
    """Add ``c2f {train,evaluate,run}``, ``index build`` and ``search`` to ``commands``."""
    _common, _, _ = _helpers()

    c2f = commands.add_parser("c2f", help="coarse-to-fine retrieval (CFITR): hash heads and evaluation")
    c2f_sub = c2f.add_subparsers(dest="c2f_command", required=True, metavar="SUBCOMMAND")
    for name, handler, text in [
        ("train", cmd_c2f_train, "train the variant's hash heads (models/<variant>/hash_heads.pt)"),
        ("evaluate", cmd_c2f_evaluate, "coarse-to-fine evaluation (metrics/c2f/<variant>/<test_set>.json)"),
        ("run", cmd_c2f_run, "train the hash heads, then evaluate coarse-to-fine"),
    ]:
        sub = c2f_sub.add_parser(name, help=text)
        _common(sub)
        sub.add_argument("--variant", required=True)
        sub.set_defaults(handler=handler)

    index = commands.add_parser("index", help="gallery indexes for coarse-to-fine search")
    index_sub = index.add_subparsers(dest="index_command", required=True, metavar="SUBCOMMAND")
    build = index_sub.add_parser("build", help="encode a folder of images into a resumable gallery index")
    _common(build)
    build.add_argument("--model", required=True, help="variant name (models/<variant>/) or models:/name@alias")
    build.add_argument("--images", required=True, help="folder of gallery images (searched recursively)")
    build.add_argument("--out", required=True, help="index directory")
    build.add_argument("--chunk-size", type=int, default=1024, help="images per resumable chunk (default 1024)")
    build.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: eval.batch_size)")
    build.add_argument("--device", default=None, help="cpu, cuda, ... (default: the variant's train.device)")
    build.add_argument("--force", action="store_true", help="discard an existing index or partial build")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(handler=cmd_index_build)

    search = commands.add_parser("search", help="coarse-to-fine search of a gallery index")
    _common(search)
    search.add_argument("query", nargs="?", help="text query")
    search.add_argument("--index", required=True, help="index directory (rsitr index build)")
    search.add_argument("--image", help="query by example: an image file")
    search.add_argument("--top-k", type=int, default=10)
    search.add_argument("--candidates", type=int, default=None, help="coarse candidates K (default: c2f.candidates)")
    search.add_argument("--no-ppsr", action="store_true", help="rank the candidates by plain Hamming similarity")
    search.add_argument("--coarse-only", action="store_true", help="skip the fine re-scoring")
    search.add_argument("--device", default=None)
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(handler=cmd_search)
