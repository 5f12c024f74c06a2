"""Benchmark EBAKER's evaluation scoring at RSICD test-set size and ViT-B-32 token shapes.

EBAKER (Eliminate Before Align: A Remote Sensing Image-Text Retrieval Framework with
Keyword Explicit Reasoning, ACM MM 2024) reports inference time for the whole RSICD test
set (Table 7): the local (token-level) similarity is the expensive part. This times the
scoring step alone (encoders excluded) on random L2-normalised features shaped like
ViT-B-32's: 1093 images x 49 patches x 512-d, 5465 captions x 77 positions x 512-d of
which 15-25 are real word tokens. It uses the model's own scoring functions
(``rsitr.models.local_alignment.fused_score``): global only, then 0.6 * global + 0.4 *
local for several block sizes and both exact local methods (``direct`` cosine blocks,
``gram`` Gram-matrix inner products; ``auto`` is what the model uses).

Each configuration runs in a fresh child process, so its peak memory is its own: reported
as the peak resident memory above the inputs (sampled every 2 ms from /proc) on CPU, or
``torch.cuda.max_memory_allocated`` above the inputs on CUDA.

    python benchmarks/bench_ebaker_eval.py                      # RSICD size, blocks 200 and 400
    python benchmarks/bench_ebaker_eval.py --images 200 --captions 1000 --methods auto
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import threading
import time

import torch
import torch.nn.functional as F

from rsitr.models.local_alignment import FusedScoreOptions, blockwise_local_similarity, fused_score


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """Peak resident memory of this process while a block of code runs (CPU)."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakSampler":
        self.start = _rss_bytes()
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def make_inputs(args: argparse.Namespace, device: torch.device) -> dict[str, torch.Tensor]:
    """Random normalised features, built in chunks so the inputs' own peak stays at their size."""
    g = torch.Generator().manual_seed(args.seed)
    n, c, p, length, d = args.images, args.captions, args.patches, args.context, args.dim
    image_global = F.normalize(torch.randn(n, d, generator=g), dim=-1)
    text_global = F.normalize(torch.randn(c, d, generator=g), dim=-1)
    image_tokens = torch.empty(n, p, d)
    for s in range(0, n, 256):
        image_tokens[s : s + 256] = F.normalize(torch.randn(min(256, n - s), p, d, generator=g), dim=-1)
    words = torch.randint(args.min_words, args.max_words + 1, (c,), generator=g)  # real word tokens
    positions = torch.arange(length)
    mask = (positions[None, :] > 0) & (positions[None, :] <= words[:, None])  # SOT at 0, EOT after
    text_tokens = torch.zeros(c, length, d)
    for s in range(0, c, 256):
        chunk = F.normalize(torch.randn(min(256, c - s), length, d, generator=g), dim=-1)
        text_tokens[s : s + 256] = chunk * mask[s : s + 256, :, None]
    tensors = {"image_global": image_global, "text_global": text_global, "image_tokens": image_tokens,
               "text_tokens": text_tokens, "text_mask": mask.float()}
    return {k: v.to(device) for k, v in tensors.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(config: dict, args: argparse.Namespace, queue) -> None:
    """One configuration in a child process: time and peak memory of the scoring step."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    inputs = make_inputs(args, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    local = config["local"]
    options = FusedScoreOptions(block_size=config.get("block_size", 400), method=config.get("method", "auto"))
    tokens = (inputs["image_tokens"], inputs["text_tokens"], inputs["text_mask"]) if local else ()
    times = []
    peak = 0
    for _ in range(args.repeats):
        _sync(device)
        with PeakSampler() as sampler:
            start = time.perf_counter()
            scores = fused_score(inputs["image_global"], inputs["text_global"], *tokens, options=options)
            _sync(device)
            times.append(time.perf_counter() - start)
        peak = max(peak, sampler.peak - sampler.start)
        del scores
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
    queue.put({**config, "seconds": min(times), "seconds_all": times, "peak_extra_mb": peak / 2**20,
               "inputs_mb": sum(t.numel() * t.element_size() for t in inputs.values()) / 2**20})


def check_methods_agree(args: argparse.Namespace) -> float:
    """Max |direct - gram| on a 100 x 300 slice (both are exact)."""
    small = argparse.Namespace(**{**vars(args), "images": 100, "captions": 300})
    x = make_inputs(small, torch.device("cpu"))
    a = blockwise_local_similarity(x["image_tokens"], x["text_tokens"], x["text_mask"], 64, method="direct")
    b = blockwise_local_similarity(x["image_tokens"], x["text_tokens"], x["text_mask"], 64, method="gram")
    return float((a - b).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1093)
    parser.add_argument("--captions", type=int, default=5465)
    parser.add_argument("--patches", type=int, default=49)
    parser.add_argument("--context", type=int, default=77)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--min-words", type=int, default=15)
    parser.add_argument("--max-words", type=int, default=25)
    parser.add_argument("--block-sizes", default="200,400")
    parser.add_argument("--methods", default="gram,direct", help="local methods: auto, direct, gram")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    configs = [{"name": "global only", "local": False}]
    for method in args.methods.split(","):
        for block in (int(b) for b in args.block_sizes.split(",")):
            configs.append({"name": f"global+local {method} block {block}", "local": True, "block_size": block,
                            "method": method})
    print(f"scoring {args.images} images x {args.captions} captions; patches {args.patches}, dim {args.dim}, "
          f"context {args.context} with {args.min_words}-{args.max_words} real words; device {args.device}, "
          f"{args.threads} threads")
    print(f"direct vs gram on a 100 x 300 slice: max |diff| = {check_methods_agree(args):.2e}")
    context = mp.get_context("spawn")
    results = []
    started = time.perf_counter()
    for config in configs:
        queue = context.Queue()
        child = context.Process(target=run_one, args=(config, args, queue))
        child.start()
        result = queue.get()
        child.join()
        results.append(result)
        print(f"  {result['name']:<32} {result['seconds']:8.2f} s   peak +{result['peak_extra_mb']:8.1f} MB "
              f"(inputs {result['inputs_mb']:.0f} MB)", flush=True)
    print(f"total wall time {time.perf_counter() - started:.1f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
