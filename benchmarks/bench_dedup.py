"""Benchmark: exact pHash near-duplicate pair search on 1,000,000 hashes.

Plants ``--planted`` near-duplicate pairs (Hamming distances cycling 0, 1, 2) among
``--n`` uniformly random 64-bit hashes, runs
``rsitr.data.dedup.find_near_duplicate_pairs(max_distance=2)`` and prints wall time, peak
memory and the number of pairs found; fails (exit 1) unless every planted pair is found and
every reported pair is within the distance. Random 64-bit hashes essentially never fall
within distance 2 of each other by chance (expected ~6e-5 such pairs at n = 1e6), so the
pairs found should be exactly the planted ones.

    python benchmarks/bench_dedup.py [--n 1000000] [--planted 10000] [--n-blocks 4]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

try:
    from rsitr.data.dedup import find_near_duplicate_pairs, hamming_distance
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from rsitr.data.dedup import find_near_duplicate_pairs, hamming_distance

MAX_DISTANCE = 2


def make_hashes(n: int, planted: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``[n] uint64`` random hashes and ``[planted, 2] int64`` planted pairs (i < j).

    Pair ``p`` copies a source hash and flips ``p % 3`` distinct random bits.
    """
    if 2 * planted > n:
        raise SystemExit(f"--planted {planted} needs --n >= {2 * planted}")
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, size=n, dtype=np.uint64)  # [n] uint64
    idx = rng.choice(n, size=2 * planted, replace=False).reshape(planted, 2)  # [P, 2] distinct items
    src, dst = idx[:, 0], idx[:, 1]
    bits = np.argsort(rng.random((planted, 64)), axis=1)[:, :MAX_DISTANCE]  # [P, 2] distinct bit positions
    k = np.arange(planted) % (MAX_DISTANCE + 1)  # [P] bits to flip: 0, 1, 2, 0, ...
    use = np.arange(MAX_DISTANCE)[None, :] < k[:, None]  # [P, 2] bool
    flips = np.where(use, np.left_shift(np.uint64(1), bits.astype(np.uint64)), np.uint64(0))  # [P, 2] uint64
    h[dst] = h[src] ^ np.bitwise_or.reduce(flips, axis=1)
    assert (hamming_distance(h[src], h[dst]) == k).all()
    return h, np.sort(idx, axis=1).astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="number of hashes")
    ap.add_argument("--planted", type=int, default=10_000, help="planted near-duplicate pairs")
    ap.add_argument("--n-blocks", type=int, default=None, help="bucketing blocks (default max_distance+1 = 3)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    hashes, planted = make_hashes(args.n, args.planted, args.seed)
    tracemalloc.start()
    t0 = time.perf_counter()
    pairs = find_near_duplicate_pairs(hashes, MAX_DISTANCE, n_blocks=args.n_blocks)
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    found = pairs[:, 0] * args.n + pairs[:, 1]  # [F] int64, sorted
    want = planted[:, 0] * args.n + planted[:, 1]  # [P] int64
    pos = np.minimum(np.searchsorted(found, want), max(found.size - 1, 0))
    missing = int((found[pos] != want).sum()) if found.size else int(want.size)
    dist = hamming_distance(hashes[pairs[:, 0]], hashes[pairs[:, 1]])

    print(f"n={args.n:,} planted={args.planted:,} max_distance={MAX_DISTANCE} n_blocks={args.n_blocks or MAX_DISTANCE + 1}")
    print(f"wall time            {wall:8.2f} s")
    print(f"peak traced memory   {peak / 2**20:8.1f} MiB (tracemalloc, inside the call)")
    print(f"max RSS              {maxrss_mib:8.1f} MiB (whole process)")
    print(f"pairs found          {pairs.shape[0]:,} (planted {planted.shape[0]:,}, missing {missing})")
    ok = missing == 0 and bool((dist <= MAX_DISTANCE).all())
    print("OK: every planted pair found" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
