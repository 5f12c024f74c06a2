"""Benchmark: coarse stages for online search: exact vs FAISS HNSW vs rsitr's hash coarse-to-fine.

Compares, on one synthetic gallery and one query set, the coarse indexes of
``rsitr.retrieval.coarse_index`` (FAISS: Johnson, Douze, Jégou, IEEE Trans. Big Data 2019; HNSW:
Malkov & Yashunin, IEEE TPAMI 2018):

* ``exact``: ``faiss.IndexFlatIP``: the ground truth; latency one query at a time and
  throughput of one batched search;
* ``hnsw``:  ``faiss.IndexHNSWFlat`` (inner product, M = ``--hnsw-m``, efConstruction =
  ``--ef-construction``); efSearch = the smallest of ``--ef-sweep`` with recall@10 >= ``--target``;
* ``c2f``:   rsitr's CFITR pipeline with a dense fine stage (``HashIndex(candidates=K)``):
  ``--bits``-bit codes searched by ``faiss.IndexBinaryFlat`` (``HammingIndex``), then the
  K candidates re-scored by the exact float32 inner product; K = the smallest of
  ``--k-sweep`` with recall@10 >= ``--target`` (and K = 70, CFITR's default, for reference).
  Codes here are SimHash (sign of a seeded Gaussian projection, as ``bench_c2f.py``);
  the product uses the trained hash heads (``HashHeads.pack``), which preserve the
  embedding neighbourhoods better than a random projection, so K here is an upper bound.

Data (float32, generated in chunks): ``--n`` unit vectors of ``--dim`` dimensions with the
cluster structure of real embeddings (not isotropic noise, where every neighbour past
the first is a coin toss): ``x = unit(0.5 s + 0.55 c + 0.67 e)`` with s one of N/10,000
super-cluster directions, c one of N/1,000 cluster directions and e item noise, so
items of a cluster are at cosine ~0.55, of a super-cluster ~0.25. Queries: ``--queries``
noisy copies of random gallery items, 70% at cosine 0.8 to their source and 30% harder
ones at cosine 0.5 (a text query sits further from its image than a near-duplicate).

Recall@10 is |top-10 ∩ exact top-10| / 10, averaged over queries. Latency: wall time of
``index.search(one_query, 10)`` per query (p50 / p95 over the queries), as an online
service sees it; exact single-query latency is measured on the first
``--exact-latency-queries`` queries (each is a full scan). Memory: ``index.memory_bytes``
(data + graph/codes the index holds; c2f counts its codes plus the float32 vectors it
re-scores from). Threads: ``faiss.omp_set_num_threads(--threads)`` for everything.

    python benchmarks/bench_search.py [--n 1000000] [--threads 2] [--skip-hnsw] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    from rsitr.retrieval.coarse_index import ExactIndex, HashIndex, HNSWIndex
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from rsitr.retrieval.coarse_index import ExactIndex, HashIndex, HNSWIndex

TOP = 10
CHUNK = 50_000
CFITR_K = 70
BUILD_THREADS: int | None = None  # set from --threads / --search-threads in main()
SEARCH_THREADS: int | None = None


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def make_gallery(n: int, dim: int, seed: int) -> np.ndarray:
    """Clustered unit vectors ``float32 [n, dim]`` (see module doc), generated in chunks."""
    rng = np.random.default_rng(seed)
    n_sub = max(10, n // 1000)
    n_sup = max(2, n // 10_000)
    sup = _unit(rng.standard_normal((n_sup, dim), dtype=np.float32))  # [S, D]
    sub = _unit(rng.standard_normal((n_sub, dim), dtype=np.float32))  # [C, D]
    sub_parent = rng.integers(0, n_sup, n_sub)  # [C]
    gallery = np.empty((n, dim), np.float32)
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        c = rng.integers(0, n_sub, m)  # [m]
        noise = rng.standard_normal((m, dim), dtype=np.float32) / np.float32(np.sqrt(dim))  # ~unit rows
        gallery[lo : lo + m] = _unit(0.5 * sup[sub_parent[c]] + 0.55 * sub[c] + 0.67 * noise)
    return gallery


def make_queries(gallery: np.ndarray, count: int, seed: int, hard_fraction: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Queries ``float32 [count, D]``: noisy copies of random items; returns (queries, is_hard [count])."""
    rng = np.random.default_rng(seed)
    source = gallery[rng.choice(gallery.shape[0], size=count, replace=False)]  # [Q, D]
    hard = np.arange(count) >= int(round(count * (1 - hard_fraction)))  # last 30%: harder
    cos = np.where(hard, 0.5, 0.8).astype(np.float32)[:, None]
    noise = rng.standard_normal(source.shape).astype(np.float32)
    noise = _unit(noise - (noise * source).sum(1, keepdims=True) * source)  # orthogonal to the source
    return _unit(cos * source + np.sqrt(1 - cos**2) * noise), hard


def recall_at(ids: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-query |ids ∩ truth| / k: ``float [Q]``."""
    return np.array([len(set(a.tolist()) & set(b.tolist())) / truth.shape[1] for a, b in zip(ids, truth)])


def time_single(index: Any, queries: np.ndarray, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Search one query at a time: ``(latencies_ms [q], ids int64 [q, 10])``."""
    count = queries.shape[0] if count is None else min(count, queries.shape[0])
    index.threads = SEARCH_THREADS  # one-query searches; may differ from the build threads
    index.search(queries[:1], TOP)  # warm-up
    lat, out = np.empty(count), np.empty((count, TOP), np.int64)
    for q in range(count):
        start = time.perf_counter()
        _, ids = index.search(queries[q : q + 1], TOP)
        lat[q] = 1000 * (time.perf_counter() - start)
        out[q] = ids[0]
    index.threads = BUILD_THREADS
    return lat, out


def row(method: str, params: str, build_s: float, memory: int, rec: np.ndarray, hard: np.ndarray,
        lat: np.ndarray | None, qps: float | None = None) -> dict[str, Any]:
    return {
        "method": method, "params": params, "build_s": build_s, "memory_mb": memory / 2**20,
        "recall10": float(rec.mean()), "recall10_hard": float(rec[hard].mean()),
        "p50_ms": None if lat is None else float(np.percentile(lat, 50)),
        "p95_ms": None if lat is None else float(np.percentile(lat, 95)),
        "latency_queries": 0 if lat is None else int(lat.size), "batch_qps": qps,
    }


def run_exact(gallery: np.ndarray, queries: np.ndarray, hard: np.ndarray, args) -> tuple[np.ndarray, dict]:
    start = time.perf_counter()
    index = ExactIndex(threads=args.threads).build(gallery)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    _, truth = index.search(queries, TOP)  # [Q, 10] ground truth, one batched call
    qps = queries.shape[0] / (time.perf_counter() - start)
    lat, ids = time_single(index, queries, args.exact_latency_queries)
    agree = recall_at(ids, truth[: len(ids)]).mean()
    print(f"  exact: build {build_s:.1f}s, batched {qps:.0f} q/s, single p50 {np.median(lat):.1f} ms "
          f"(single vs batched top-10 agreement {agree:.4f})", flush=True)
    out = row("exact (IndexFlatIP)", "brute force", build_s, index.memory_bytes, np.ones(len(queries)), hard, lat, qps)
    return truth, out


def run_hnsw(gallery: np.ndarray, queries: np.ndarray, hard: np.ndarray, truth: np.ndarray, args) -> list[dict]:
    start = time.perf_counter()
    index = HNSWIndex(m=args.hnsw_m, ef_construction=args.ef_construction, threads=args.threads).build(gallery)
    build_s = time.perf_counter() - start
    print(f"  hnsw: build {build_s:.1f}s ({gallery.shape[0] / build_s:.0f} items/s)", flush=True)
    rows = []
    for ef in args.ef_sweep:
        index.ef_search = ef
        lat, ids = time_single(index, queries)
        rec = recall_at(ids, truth)
        rows.append(row("hnsw (IndexHNSWFlat)", f"M={args.hnsw_m}, efC={args.ef_construction}, efS={ef}",
                        build_s, index.memory_bytes, rec, hard, lat))
        print(f"    efSearch {ef}: recall@10 {rec.mean():.4f}, p50 {np.median(lat):.3f} ms", flush=True)
    return rows


def run_c2f(gallery: np.ndarray, queries: np.ndarray, hard: np.ndarray, truth: np.ndarray, args,
            levels: list[float]) -> list[dict]:
    """Sweep K; time one query at a time at K = 70 and at the first K reaching each recall level."""
    start = time.perf_counter()
    index = HashIndex(bits=args.bits, candidates=CFITR_K, seed=args.seed, threads=args.threads).build(gallery)
    build_s = time.perf_counter() - start
    print(f"  c2f: codes + IndexBinaryFlat {build_s:.1f}s", flush=True)
    # Recall of every K from one Hamming search of max(K) (rows in (distance, id) order, so
    # its first K columns are the top-K shortlist) and one re-score of those candidates.
    from rsitr.retrieval.coarse_index import sort_results

    k_max = min(max(args.k_sweep), gallery.shape[0])
    index.hamming.index.use_heap = k_max < index.HEAP_MAX_K
    cand, _ = index.hamming.search(index._encode(queries, query=True), k_max)  # [Q, Kmax]
    rescored = index._rescore(queries, cand)  # [Q, Kmax] exact inner products
    recalls = {k: float(recall_at(sort_results(rescored[:, :k], cand[:, :k], TOP)[1], truth).mean()) for k in args.k_sweep}
    del cand, rescored
    print("    recall@10 by K: " + ", ".join(f"{k}: {r:.4f}" for k, r in recalls.items()), flush=True)
    timed = {CFITR_K} if CFITR_K in recalls else set()
    for level in levels:
        timed.add(next((k for k in args.k_sweep if recalls[k] >= level), args.k_sweep[-1]))
    rows = []
    for k in sorted(timed):
        index.candidates = k
        lat, ids = time_single(index, queries)  # the real per-query path, timed
        rows.append(row(f"c2f hash{args.bits} -> K -> exact", f"K={k}", build_s, index.memory_bytes,
                        recall_at(ids, truth), hard, lat))
        rows[-1]["sweep_recall10"] = recalls[k]  # batched prefix recall, the one K was chosen by
        print(f"    K {k}: single-query recall@10 {rows[-1]['recall10']:.4f}, p50 {np.median(lat):.3f} ms, "
              f"p95 {np.percentile(lat, 95):.3f} ms", flush=True)
    return rows


def pick(rows: list[dict], level: float) -> dict | None:
    """The first row (smallest parameter of the sweep) that reaches the recall level."""
    return next((r for r in rows if r["recall10"] >= level), None)


def verdict(hnsw: dict | None, c2f: dict | None, level: float, target: float) -> str:
    note = "" if level >= target else (f" (HNSW's efSearch sweep tops out at recall@10 {level:.4f} < {target}, "
                                       "so the comparison is at that recall)")
    if hnsw is None:
        return "no verdict: HNSW was not run"
    if c2f is None:
        return (f"c2f did not reach recall@10 >= {level:.4f} in the K sweep{note}: recommend HNSW "
                f"({hnsw['params']}) as the default coarse stage")
    ratio = c2f["p50_ms"] / hnsw["p50_ms"]
    if ratio <= 1.5:
        return f"c2f ({c2f['params']}) p50 is {ratio:.2f}x HNSW's at recall@10 >= {level:.4f}{note}: within 1.5x, keep the hash coarse stage"
    return (f"c2f ({c2f['params']}) p50 is {ratio:.2f}x HNSW's ({hnsw['params']}) at recall@10 >= {level:.4f}{note}: "
            f"more than 1.5x, recommend HNSW as the default coarse stage")


def table(rows: list[dict]) -> str:
    head = "| method | params | build s | index MB | recall@10 | recall@10 hard | p50 ms | p95 ms | batched q/s |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        lines.append(f"| {r['method']} | {r['params']} | {r['build_s']:.1f} | {r['memory_mb']:.0f} | "
                     f"{r['recall10']:.4f} | {r['recall10_hard']:.4f} | {fmt(r['p50_ms'], '.3f')} | "
                     f"{fmt(r['p95_ms'], '.3f')} | {fmt(r['batch_qps'], '.0f')} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--bits", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2, help="FAISS threads for building and batched search")
    parser.add_argument("--search-threads", type=int, help="FAISS threads for the one-query searches (default --threads)")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=40)
    parser.add_argument("--ef-sweep", type=ints, default=[16, 32, 64, 128, 256])
    parser.add_argument("--k-sweep", type=ints, default=[70, 250, 1000, 2000, 4000, 8000, 16000, 32000])
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--exact-latency-queries", type=int, default=200)
    parser.add_argument("--skip-hnsw", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    global BUILD_THREADS, SEARCH_THREADS
    BUILD_THREADS, SEARCH_THREADS = args.threads, args.search_threads or args.threads
    import faiss

    import torch  # noqa: F401  (imported now, not inside a timed build)

    faiss.omp_set_num_threads(args.threads)
    start = time.perf_counter()
    gallery = make_gallery(args.n, args.dim, args.seed)  # [N, D] float32
    queries, hard = make_queries(gallery, args.queries, args.seed + 1)
    print(f"gallery {args.n:,} x {args.dim} float32 ({gallery.nbytes / 2**20:.0f} MB) in "
          f"{time.perf_counter() - start:.1f}s; {args.queries} queries ({hard.sum()} hard); threads {args.threads}, one-query search threads {SEARCH_THREADS}", flush=True)
    truth, exact_row = run_exact(gallery, queries, hard, args)
    hnsw_rows = [] if args.skip_hnsw else run_hnsw(gallery, queries, hard, truth, args)
    best = max((r["recall10"] for r in hnsw_rows), default=args.target)
    level = min(args.target, best)  # "equal recall": the target, or HNSW's best if it falls short
    c2f_rows = run_c2f(gallery, queries, hard, truth, args, sorted({level, args.target}))
    hnsw_pick = pick(hnsw_rows, level)
    c2f_pick = next((r for r in c2f_rows if r["sweep_recall10"] >= level), None)
    shown = [exact_row] + ([hnsw_pick] if hnsw_pick else []) + c2f_rows
    text = verdict(hnsw_pick, c2f_pick, level, args.target)
    print(f"\nN = {args.n:,}, D = {args.dim}, {args.queries} queries, threads = {args.threads} "
          f"(one-query searches: {SEARCH_THREADS})\n")
    print(table(shown) + "\n\nHNSW efSearch sweep:\n\n" + table(hnsw_rows) if hnsw_rows else table(shown))
    print(f"\nverdict: {text}\npeak RSS {_peak_rss_mb():.0f} MB, total {time.perf_counter() - start:.0f}s")
    if args.out:
        report = {"n": args.n, "dim": args.dim, "queries": args.queries, "threads": args.threads,
                  "search_threads": SEARCH_THREADS,
                  "rows": shown, "hnsw_sweep": hnsw_rows, "c2f_rows": c2f_rows, "verdict": text,
                  "peak_rss_mb": _peak_rss_mb(), "total_s": time.perf_counter() - start}
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
