"""Benchmark: a bounded load test of ``rsitr serve`` on the loopback interface.

Starts ``rsitr serve`` (a real uvicorn process) on a free port of 127.0.0.1, waits for
``/healthz``, sends ``--warmup`` untimed text queries, then ``--requests`` ``POST /search/text``
requests from ``--concurrency`` threads (one ``httpx.Client`` per thread, keep-alive), and
prints throughput (requests per second over the wall time of the timed phase), latency
percentiles (p50 / p95 / p99 / max, client side, per request) and the error count (any
non-200 answer or transport error). The run is bounded: at most ``--requests`` requests and
``--max-seconds`` of load; only 127.0.0.1 is contacted.

Without ``--index`` it makes its own project in a temporary folder: the 240-image toy dataset
of the tests (``tests/tracking/toy_project.py``), the ``zeroshot`` variant (no training) tracked
in a local SQLite MLflow store, registered as ``bench-zeroshot`` and promoted to champion, and
an index built with ``rsitr index build --model models:/bench-zeroshot@champion`` (serve.coarse
= hnsw, fine = the model's scorer, 70 candidates).

    python benchmarks/bench_serve.py [--index INDEX --params PARAMS] [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
QUERIES = [f"a {word} {colour} field" for word in ("plain", "flat", "uniform", "bare")
           for colour in ("red", "green", "blue", "yellow", "white", "black")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env() -> dict[str, str]:
    src = str(REPO / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p),
            "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def rsitr(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "rsitr.cli", *argv], env=env(), check=True, stdout=subprocess.DEVNULL)


def make_project(root: Path) -> tuple[Path, Path]:
    """Toy project + zeroshot registered and promoted + its index; returns (params, index)."""
    spec = importlib.util.spec_from_file_location("toy_project", REPO / "tests" / "tracking" / "toy_project.py")
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    params = toy.make_project(root)
    sets = ["--set", "tracking.model_prefix=bench"]
    rsitr("train", "--params", str(params), "--variant", "zeroshot", *sets)
    rsitr("register", "--params", str(params), "--variant", "zeroshot", *sets)
    rsitr("promote", "--params", str(params), "--variant", "zeroshot", *sets, "--force", "--reason",
          "bench_serve toy project (not evaluated)")
    index = root / "indexes" / "bench-zeroshot-v1"
    rsitr("index", "build", "--params", str(params), *sets, "--model", "models:/bench-zeroshot@champion",
          "--images", str(root / "data" / "img"), "--out", str(index), "--no-progress")
    return params, index


def load(url: str, requests: int, concurrency: int, top_k: int, max_seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + max_seconds

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            while time.monotonic() < deadline:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                start = time.perf_counter()
                try:
                    response = client.post("/search/text", json={"query": QUERIES[n % len(QUERIES)], "top_k": top_k})
                    ok = response.status_code == 200 and len(response.json()["results"]) == top_k
                    problem = None if ok else f"HTTP {response.status_code}: {response.text[:100]}"
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if problem:
                        errors.append(problem)

    wall = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - wall
    ms = sorted(1000.0 * x for x in latencies)
    pick = lambda q: ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))]  # noqa: E731
    return {"requests": len(ms), "concurrency": concurrency, "top_k": top_k, "wall_s": round(wall, 2),
            "throughput_rps": round(len(ms) / wall, 1), "latency_ms": {
                "mean": round(statistics.fmean(ms), 1), "p50": round(pick(0.50), 1), "p95": round(pick(0.95), 1),
                "p99": round(pick(0.99), 1), "max": round(ms[-1], 1)},
            "errors": len(errors), "error_examples": errors[:3], "stopped_by_time_limit": len(ms) < requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", help="a built index (default: build a toy project in a temporary folder)")
    parser.add_argument("--params", help="params file of the project the index belongs to (with --index)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound on the timed phase")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rsitr-bench-serve-") as tmp:
        if args.index:
            params, index = Path(args.params or "params.yaml"), Path(args.index)
        else:
            print("building a toy project (zeroshot, registered + promoted, indexed) ...", file=sys.stderr)
            params, index = make_project(Path(tmp))
        port = free_port()
        log = open(Path(tmp) / "serve.log", "w")
        server = subprocess.Popen([sys.executable, "-m", "rsitr.cli", "serve", "--params", str(params), "--index",
                                   str(index), "--host", "127.0.0.1", "--port", str(port)],
                                  env=env(), stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    health = httpx.get(f"{url}/healthz", timeout=2).json()
                    break
                except httpx.HTTPError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("rsitr serve did not start:\n" + (Path(tmp) / "serve.log").read_text()[-2000:])
                    time.sleep(0.5)
            warm = load(url, args.warmup, 2, args.top_k, 60)
            result = load(url, args.requests, args.concurrency, args.top_k, args.max_seconds)
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
    serving = health["serving"]
    result |= {"serving": {k: serving.get(k) for k in ("name", "version", "items", "coarse", "fine")},
               "warmup_errors": warm["errors"], "cpus": os.cpu_count()}
    print(f"rsitr serve {serving.get('name')} v{serving.get('version')}: {serving['items']} images, coarse "
          f"{serving['coarse']}, fine {serving['fine']}; POST /search/text top_k={args.top_k}")
    print(f"{result['requests']} requests at concurrency {args.concurrency} in {result['wall_s']} s: "
          f"{result['throughput_rps']} req/s; latency p50 {result['latency_ms']['p50']} ms, p95 "
          f"{result['latency_ms']['p95']} ms, p99 {result['latency_ms']['p99']} ms, max {result['latency_ms']['max']} ms; "
          f"errors {result['errors']}")
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if result["errors"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
