"""Benchmark: CFITR's efficiency claim, measured: c2f (Hamming + PPSR + SSM on K) vs both exhaustive baselines.

CFITR (Zhou, Wu, Deng, IEEE GRSL 2024) shortlists with hash codes and re-scores the
shortlist with a single-stream module (SSM); the claim is accuracy above dual-stream
retrieval at near hash-lookup cost. On ONE test set and machine, in one run, this times:

* (a) exhaustive SSM: every (image, caption) pair through ``model.pair_scores``; by default
  a seeded sample of queries (``--sample IMAGES,CAPTIONS``; ``0,0`` = every pair), whose
  seconds are extrapolated to all pairs (said so in the table);
* (b) c2f: the model's own hash codes (else SimHash) -> Hamming similarity -> PPSR -> top K
  per query in both directions (K = max(c2f.min_candidates, ceil(candidate_share x gallery)))
  -> SSM on those pairs (``rsitr.retrieval.coarse_to_fine``, ``PairRescorer``);
* (c) dual-stream exhaustive cosine (``model.score`` over all pairs);

and each one's mR (the sampled one on its sample). Then per-query latency at a 100k
gallery (``--gallery``): random packed codes and float32 embeddings (synthetic; only the
cost matters), a caption query's Hamming top-K (FAISS) + the SSM on K pairs (measured on K
real pairs of the test set) vs the dual cosine scan of the gallery, and the exhaustive SSM
per query extrapolated from the measured cost per pair.

Model: ``--variant V`` of ``--params`` (a ``cfitr`` variant: its ``--checkpoint``, or freshly
built and untrained when none is given) on ``--test-set`` of the project's manifest; or
``--stub`` (default when no variant is given): a small transformer SSM (3 blocks, width 128)
over synthetic tokens of ``--images`` images x 5 captions, untrained (timings only; its mR
is chance).

    python benchmarks/bench_cfitr.py --stub [--images 112]
    python benchmarks/bench_cfitr.py --variant cfitr --test-set synth_rsicd [--checkpoint models/cfitr/best.pt]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

try:
    import rsitr  # noqa: F401
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rsitr.config.schema import CoarseToFineParams  # noqa: E402
from rsitr.retrieval.binary_codes import pack_codes  # noqa: E402
from rsitr.retrieval.c2f_measures import sampled_exhaustive, shortlist_recall  # noqa: E402
from rsitr.retrieval.coarse_to_fine import (  # noqa: E402
    CoarseToFineOptions, coarse_to_fine_matrices, fine_pair_share, metrics_from_matrices)
from rsitr.retrieval.codes import ModelHashCoder, SimHashCoder  # noqa: E402
from rsitr.retrieval.hamming_search import HammingIndex  # noqa: E402
from rsitr.retrieval.metrics import retrieval_metrics  # noqa: E402
from rsitr.retrieval.rescore import PairRescorer  # noqa: E402

Embeddings = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- the stub SSM


class StubCfitr(nn.Module):
    """CfitrModel's evaluation interface on synthetic embeddings: globals, hash codes, tokens; an SSM."""

    def __init__(self, dim: int = 64, width: int = 128, layers: int = 3, heads: int = 4, bits: int = 128):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.projection = torch.randn(dim, bits, generator=generator)  # [D, bits]
        self.text_in, self.image_in = nn.Linear(dim, width), nn.Linear(dim, width)
        self.cls = nn.Parameter(torch.zeros(width))
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, 1)
        self.eval()

    def embeddings(self, images: int, per_image: int, tokens: tuple[int, int] = (16, 16), seed: int = 0
                   ) -> tuple[Embeddings, Embeddings, np.ndarray]:
        """Image and caption embeddings (each caption near its image) and ``caption_image [C]``."""
        rng = torch.Generator().manual_seed(seed)
        dim = self.projection.shape[0]
        image_global = nn.functional.normalize(torch.randn(images, dim, generator=rng), dim=-1)  # [N, D]
        owner = np.repeat(np.arange(images), per_image)  # [C]
        text_global = nn.functional.normalize(image_global[owner] + 1.5 * torch.randn(len(owner), dim, generator=rng) / math.sqrt(dim), dim=-1)
        image_tokens = image_global[:, None] + 0.1 * torch.randn(images, tokens[1], dim, generator=rng)  # [N, P, D]
        text_tokens = text_global[:, None] + 0.1 * torch.randn(len(owner), tokens[0], dim, generator=rng)  # [C, L, D]
        image = {"global": image_global, "hash": torch.tanh(image_global @ self.projection), "tokens": image_tokens}
        text = {"global": text_global, "hash": torch.tanh(text_global @ self.projection), "tokens": text_tokens,
                "mask": torch.ones(len(owner), tokens[0])}
        return image, text, owner

    @torch.no_grad()
    def score(self, image_embeddings: Embeddings, text_embeddings: Embeddings) -> torch.Tensor:
        return image_embeddings["global"] @ text_embeddings["global"].T  # [N, C]

    @torch.no_grad()
    def pair_scores(self, image_embeddings: Embeddings, text_embeddings: Embeddings, image_index: torch.Tensor,
                    text_index: torch.Tensor) -> torch.Tensor:
        text = self.text_in(text_embeddings["tokens"][text_index])  # [M, L, F]
        image = self.image_in(image_embeddings["tokens"][image_index])  # [M, P, F]
        x = torch.cat([self.cls.expand(text.shape[0], 1, -1), text, image], dim=1)  # [M, 1 + L + P, F]
        return self.head(self.blocks(x)[:, 0]).squeeze(-1)  # [M]


# ----------------------------------------------------------------------------- a real model


def project_setup(args: argparse.Namespace) -> tuple[Any, Embeddings, Embeddings, np.ndarray, CoarseToFineParams]:
    """The variant's model (checkpoint, or fresh) and its embeddings of ``--test-set``."""
    from rsitr.app.core.paths import ProjectPaths
    from rsitr.config import load_params
    from rsitr.data.images import ImageLoader
    from rsitr.data.manifest import read_manifest, select_split
    from rsitr.models import build_model, resolve_device
    from rsitr.models.trained import load_trained_model
    from rsitr.retrieval.evaluate import encode_split

    params = load_params(args.params)
    v = params.variant(args.variant)
    model = load_trained_model(params, v, args.checkpoint) if args.checkpoint else build_model(params, v)
    device = resolve_device(v.train.device)
    model = model.to(device).eval()
    manifest = read_manifest(ProjectPaths.of(params).manifest)
    split = select_split(manifest, "test", datasets=[args.test_set], languages=["en"],
                         normalize_arabic=params.text.normalize_arabic)
    image, text, _ = encode_split(model, split, ImageLoader.for_model(model, cache=False), v.eval.batch_size, device)
    return model, image, text, np.asarray(split.caption_image), params.c2f


# ----------------------------------------------------------------------------- the measurements


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def test_set_rows(model: Any, image: Embeddings, text: Embeddings, owner: np.ndarray, c2f: CoarseToFineParams,
                  sample: tuple[int, int]) -> dict[str, Any]:
    """(a) exhaustive SSM, (b) c2f, (c) dual exhaustive cosine on one test set."""
    n, c = image["global"].shape[0], len(owner)
    pairs = PairRescorer.for_model(model, image, text)
    exhaustive = sampled_exhaustive(pairs.score_pairs, owner, n, sample)
    options = CoarseToFineOptions.of(c2f)
    coder = ModelHashCoder() if "hash" in image else SimHashCoder(c2f.bits, c2f.simhash_seed)

    def c2f_run() -> dict[str, Any]:
        return coarse_to_fine_matrices(coder.codes("image", image), coder.codes("text", text), options, fine=pairs)

    ranking, c2f_s = _timed(c2f_run)
    dual, dual_s = _timed(lambda: model.score(image, text).float().cpu())  # [N, C]
    recall = shortlist_recall(ranking["candidates_i2t"], ranking["candidates_t2i"], owner)
    return {
        "images": n, "captions": c, "codes": coder.kind, "bits": coder.bits_of(image),
        "exhaustive_ssm": {"seconds": exhaustive["all_pairs_seconds_estimate"], "measured_s": exhaustive["seconds"],
                           "pairs_measured": exhaustive["pairs"], "sampled": exhaustive["sampled"],
                           "mR": exhaustive["metrics"]["mR"],
                           "ms_per_pair": 1000.0 * exhaustive["seconds"] / max(exhaustive["pairs"], 1)},
        "c2f": {"seconds": c2f_s, "mR": metrics_from_matrices(ranking["i2t"], ranking["t2i"], owner)["mR"],
                "K_t2i": ranking["candidates_t2i"].shape[1], "K_i2t": ranking["candidates_i2t"].shape[1],
                "fine_share": fine_pair_share(ranking["candidates_i2t"], ranking["candidates_t2i"], n, c),
                "shortlist_recall_i2t": recall["i2t"], "shortlist_recall_t2i": recall["t2i"],
                "fine_s": ranking["timings"]["fine_s"]},
        "dual_exhaustive": {"seconds": dual_s, "mR": retrieval_metrics(dual, owner)["mR"]},
    }


def gallery_latency(model: Any, image: Embeddings, text: Embeddings, gallery: int, k: int, bits: int,
                    queries: int, seed: int = 0) -> dict[str, float]:
    """Per-query ms at a ``gallery``-item gallery: Hamming top-K + SSM on K, dual cosine scan, exhaustive SSM."""
    rng = np.random.default_rng(seed)
    dim = image["global"].shape[1]
    hamming = HammingIndex(pack_codes(rng.standard_normal((gallery, bits)).astype(np.float32)))  # [G, bits / 8]
    dense = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((gallery, dim), dtype=np.float32)), dim=-1)
    query_codes = pack_codes(rng.standard_normal((queries, bits)).astype(np.float32))  # [Q, bits / 8]
    n_images, n_captions = image["global"].shape[0], text["global"].shape[0]
    hamming_ms, ssm_ms, dual_ms = [], [], []
    for q in range(queries):
        _, seconds = _timed(lambda: hamming.search(query_codes[q: q + 1], k))
        hamming_ms.append(1000 * seconds)
        cand = torch.from_numpy(rng.integers(0, n_images, k))  # K real test images stand in for the shortlist
        caption = torch.full((k,), int(rng.integers(0, n_captions)), dtype=torch.long)
        _, seconds = _timed(lambda: model.pair_scores(image, text, cand, caption))
        ssm_ms.append(1000 * seconds)
        query = text["global"][int(caption[0])].float().cpu()
        _, seconds = _timed(lambda: torch.topk(torch.mv(dense, query), 10))
        dual_ms.append(1000 * seconds)
    per_pair = float(np.median(ssm_ms)) / k
    return {"gallery": gallery, "K": k, "hamming_ms": float(np.median(hamming_ms)), "ssm_ms": float(np.median(ssm_ms)),
            "c2f_ms": float(np.median(hamming_ms) + np.median(ssm_ms)), "dual_ms": float(np.median(dual_ms)),
            "exhaustive_ssm_ms": per_pair * gallery}


def _print(report: dict[str, Any]) -> None:
    rows, lat = report["test_set"], report["latency"]
    sampled = rows["exhaustive_ssm"]
    note = (f"sampled: {sampled['pairs_measured']:,} pairs timed, extrapolated to all" if sampled["sampled"]
            else "all pairs")
    print(f"{report['model']} on {report['name']}: {rows['images']} images x {rows['captions']} captions, "
          f"{rows['codes']} codes ({rows['bits']} bits), device {report['device']}, threads {report['threads']}")
    print(f"{'':24}{'seconds':>10}{'mR':>8}  notes")
    print(f"{'(a) exhaustive SSM':24}{sampled['seconds']:>10.2f}{sampled['mR']:>8.2f}  {note}; "
          f"{sampled['ms_per_pair']:.3f} ms/pair; mR on the sample")
    c = rows["c2f"]
    print(f"{'(b) c2f hash+PPSR+SSM':24}{c['seconds']:>10.2f}{c['mR']:>8.2f}  K t2i {c['K_t2i']} / i2t {c['K_i2t']}, "
          f"fine_share {c['fine_share']:.3f}, shortlist recall i2t {c['shortlist_recall_i2t']:.1f}% "
          f"t2i {c['shortlist_recall_t2i']:.1f}%")
    d = rows["dual_exhaustive"]
    print(f"{'(c) dual cosine, all':24}{d['seconds']:>10.3f}{d['mR']:>8.2f}")
    print(f"per caption query at a {lat['gallery']:,}-item gallery (synthetic codes/embeddings, K = {lat['K']}): "
          f"c2f {lat['c2f_ms']:.2f} ms (Hamming {lat['hamming_ms']:.2f} + SSM {lat['ssm_ms']:.2f}), "
          f"dual cosine {lat['dual_ms']:.2f} ms, exhaustive SSM ~{lat['exhaustive_ssm_ms'] / 1000:.1f} s (extrapolated)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stub", action="store_true", help="the synthetic stub SSM (default without --variant)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--variant", default=None, help="a cfitr variant of --params")
    parser.add_argument("--checkpoint", default=None, help="trained weights (default: freshly built, untrained)")
    parser.add_argument("--test-set", default="synth_rsicd")
    parser.add_argument("--images", type=int, default=112, help="stub: test images (5 captions each)")
    parser.add_argument("--sample", default="50,250", help="image,caption queries of (a); 0,0 = every pair")
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=None, help="K at the large gallery (default c2f.candidates)")
    parser.add_argument("--queries", type=int, default=20, help="timed queries at the large gallery")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.variant and not args.stub:
        model, image, text, owner, c2f = project_setup(args)
        name, label = args.test_set, f"{args.variant} ({'checkpoint' if args.checkpoint else 'fresh, untrained'})"
    else:
        model, c2f = StubCfitr(), CoarseToFineParams()
        image, text, owner = model.embeddings(args.images, 5)
        name, label = f"synthetic ({args.images} images)", "stub SSM (3 x 128, untrained)"
    sample = tuple(int(x) for x in args.sample.split(","))
    with torch.no_grad():
        rows = test_set_rows(model, image, text, owner, c2f, sample)
        latency = gallery_latency(model, image, text, args.gallery, args.k or c2f.candidates, rows["bits"], args.queries)
    report = {"model": label, "name": name, "device": str(image["global"].device), "threads": args.threads,
              "test_set": rows, "latency": latency}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
