"""``rsitr c2f ...``, ``rsitr index build`` and ``rsitr search``: coarse-to-fine retrieval commands.

    rsitr c2f train    --variant V      hash heads -> models/V/hash_heads.pt
    rsitr c2f evaluate --variant V      -> metrics/c2f/V/<test_set>.json
    rsitr c2f run      --variant V      train, then evaluate
    rsitr index build  --model MODEL --images DIR | --split NAME --out INDEX [--chunk-size N]
                       (MODEL: models:/<name>@<alias>, models:/<name>/<version>, a run id, a variant)
    rsitr search       --index INDEX "text query" | --image PATH  [--top-k 10] [--json]
    rsitr serve        --index INDEX|DIR [--model models:/<name>@<alias>] [--host H] [--port P]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rsitr.cli.common import add_params_options, add_variant_command, load, print_json


def cmd_c2f_train(args: argparse.Namespace) -> None:
    from rsitr.app.steps.c2f import run_c2f_train

    summary = run_c2f_train(load(args), args.variant)
    print_json({k: v for k, v in summary.items() if k != "history"} | {"final": (summary["history"] or [{}])[-1]})


def cmd_c2f_evaluate(args: argparse.Namespace) -> None:
    from rsitr.app.steps.c2f import run_c2f_evaluate

    run_c2f_evaluate(load(args), args.variant)


def cmd_c2f_run(args: argparse.Namespace) -> None:
    from rsitr.app.steps.c2f import run_c2f_evaluate, run_c2f_train

    params = load(args)
    if not params.c2f.enabled:
        print(f"c2f.enabled is false: skipping coarse-to-fine for {args.variant}", file=sys.stderr)
        return
    run_c2f_train(params, args.variant)
    run_c2f_evaluate(params, args.variant)


def cmd_index_build(args: argparse.Namespace) -> None:
    from rsitr.app.serving.gallery import GalleryBuild, build_gallery_index

    build = GalleryBuild(chunk_size=args.chunk_size, batch_size=args.batch_size, device=args.device, force=args.force,
                         progress=not args.no_progress)
    index = build_gallery_index(load(args), args.model, args.images, args.out, split=args.split, build=build)
    print_json({"index": str(index.root), "items": len(index), "model": index.manifest["model"], "bits": index.bits,
                "embeddings": index.manifest["embeddings"], "build_seconds": index.manifest["build_seconds"]})


def cmd_search(args: argparse.Namespace) -> None:
    from rsitr.app.serving.gallery import SearchChoice, search_gallery

    choice = SearchChoice(coarse=args.coarse, fine="none" if args.coarse_only else None, candidates=args.candidates,
                          ppsr=not args.no_ppsr, device=args.device)
    result = search_gallery(load(args), args.index, text=args.query, image=args.image, top_k=args.top_k, choice=choice)
    if args.json:
        print_json({k: v for k, v in result.items() if k != "items"})
        return
    print(f"{result['mode']} query: {result['query']!r}  ({result['items']} items, {result['candidates']} candidates, "
          f"coarse {result['coarse']}, fine {result['fine']}, {result['timings_ms']['total']:.1f} ms)")
    for item in result["results"]:
        print(f"{item['rank']:>3}  {item['score']:+.4f}  (coarse {item['coarse']:+.3f})  {item['id']}")


def cmd_serve(args: argparse.Namespace) -> None:
    from rsitr.app.serving.serve import run_server

    run_server(load(args), args.index, model=args.model, host=args.host, port=args.port, device=args.device)


def register(commands: Any) -> None:
    c2f = commands.add_parser("c2f", help="coarse-to-fine retrieval (CFITR): hash heads and evaluation")
    c2f_sub = c2f.add_subparsers(dest="c2f_command", required=True, metavar="SUBCOMMAND")
    for name, handler, text in [
        ("train", cmd_c2f_train, "train the variant's hash heads (models/<variant>/hash_heads.pt)"),
        ("evaluate", cmd_c2f_evaluate, "coarse-to-fine evaluation (metrics/c2f/<variant>/<test_set>.json)"),
        ("run", cmd_c2f_run, "train the hash heads, then evaluate coarse-to-fine"),
    ]:
        add_variant_command(c2f_sub, name, text, handler)

    index = commands.add_parser("index", help="gallery indexes for coarse-to-fine search")
    index_sub = index.add_subparsers(dest="index_command", required=True, metavar="SUBCOMMAND")
    build = index_sub.add_parser("build", help="encode a folder of images into a resumable gallery index")
    add_params_options(build)
    build.add_argument("--model", required=True, help="models:/<name>@<alias> or models:/<name>/<version> (registry), "
                       "an MLflow run id with a registered version, or a variant name (models/<variant>/best.pt)")
    build.add_argument("--images", default=None, help="folder of gallery images (searched recursively)")
    build.add_argument("--split", default=None, help="instead of --images: the images of a split of the processed "
                       "manifest (test, or dataset:test)")
    build.add_argument("--out", required=True, help="index directory")
    build.add_argument("--chunk-size", type=int, default=1024, help="images per resumable chunk (default 1024)")
    build.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: eval.batch_size)")
    build.add_argument("--device", default=None, help="cpu, cuda, ... (default: the variant's train.device)")
    build.add_argument("--force", action="store_true", help="discard an existing index or partial build")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(handler=cmd_index_build)

    search = commands.add_parser("search", help="coarse-to-fine search of a gallery index")
    add_params_options(search)
    search.add_argument("query", nargs="?", help="text query")
    search.add_argument("--index", required=True, help="index directory (rsitr index build)")
    search.add_argument("--image", help="query by example: an image file")
    search.add_argument("--top-k", type=int, default=10)
    search.add_argument("--candidates", type=int, default=None, help="coarse candidates K (default: c2f.candidates)")
    search.add_argument("--coarse", default=None, help="coarse stage: hnsw, ivf, exact or hash (default: serve.coarse)")
    search.add_argument("--no-ppsr", action="store_true", help="hash coarse stage: plain Hamming similarity")
    search.add_argument("--coarse-only", action="store_true", help="skip the fine re-scoring")
    search.add_argument("--device", default=None)
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(handler=cmd_search)

    serve = commands.add_parser("serve", help="HTTP search service and web page; follows a registry alias")
    add_params_options(serve)
    serve.add_argument("--index", required=True, help="an index (rsitr index build), or a folder of indexes; new "
                       "versions are looked up beside it")
    serve.add_argument("--model", default=None, help="the alias to follow, models:/<name>@<alias> (default: the one "
                       "the index was built from)")
    serve.add_argument("--host", default=None, help="default: serve.host (127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="default: serve.port (8000)")
    serve.add_argument("--device", default=None)
    serve.set_defaults(handler=cmd_serve)
