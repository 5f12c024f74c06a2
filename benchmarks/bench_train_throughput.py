"""Benchmark: training throughput of rsitr's CLIP pretraining loop vs open_clip_train.

Trains the same open_clip model on the same CSV corpus with the same CPU threads twice:

* ``rsitr``: ``rsitr.training.pretrain.pretrain`` (what ``rsitr pretrain`` runs): a
  ``CsvCorpus`` streamed through ``CorpusBatches`` in the main process, open_clip's
  ``ClipLoss``, AdamW, warm-up + cosine, gradient clipping, ``logit_scale`` clamp;
* ``open_clip_train``: ``python -m open_clip_train.main`` (open_clip's own trainer) through
  a small launcher that registers rsitr's model configs (``rsitr-tiny``) with
  ``open_clip.add_model_config`` and sets the threads, with ``--dataset-type csv
  --csv-img-key filepath --csv-caption-key title --workers 0 --precision fp32``.

Both get the same batch size, lr, weight decay, warm-up, grad-clip norm, seed, random
initialisation (no pretrained weights), one epoch of exactly ``steps`` batches, data loading
in the main process (rsitr's pretraining uses no DataLoader workers; open_clip_train gets
``--workers 0``) and ``torch.set_num_threads(--threads)`` (plus ``OMP_NUM_THREADS``). The
default is 1 thread: on a 2-core machine that other processes share, 2 OpenMP threads
collapse (a step ran 3-10x slower than with 1 thread, as one thread waits for the other to
be scheduled); pass ``--threads 2`` on an idle machine.
The corpus is made here: ``--images`` smooth random RGB PNGs of ``--image-px`` pixels with
template captions, and a ``filepath,title`` CSV of ``batch * steps`` rows cycling through them.

A step's time is the time between the ends of consecutive optimizer steps (data loading,
forward, loss, backward, clipping, optimizer, schedule, bookkeeping), marked the same way
in both: ``time.perf_counter()`` (wall) and ``time.process_time()`` (the process's CPU time)
read in rsitr's ``on_step`` hook, and in open_clip_train by a logging filter the launcher
puts on its per-step ``Train Epoch`` log line (``--log-every-n-steps 1``). The first
``warmup`` steps of each run are dropped; samples/s = batch / median wall step time of the
rest (the median, as other processes may share the cores). The ratio is also given by CPU
time, which another process's load disturbs far less than wall time: on a shared machine
that is the steadier figure. Checkpoint writes are excluded: rsitr is stopped after its
last step (``on_step``), open_clip_train runs with ``--logs none``.

``--profile`` reruns both trainers under cProfile, timed by the process's CPU clock, and
prints where a step's time goes: data loading, forward + loss, backward, gradient clipping,
optimizer, the rest (cProfile adds overhead to Python-heavy parts, alike for both).

open_clip_train imports webdataset and braceexpand, which open_clip_torch does not install
without its ``training`` extra: ``pip install -e '.[bench]'`` (``make bench`` does).

    python benchmarks/bench_train_throughput.py [--cases rsitr-tiny:32:20:4,ViT-B-32:8:3:1] [--threads 1] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import importlib.util
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

try:
    from rsitr.config import ModelParams, PretrainParams
    from rsitr.data.corpus import CsvCorpus
    from rsitr.models.factory import MODEL_CONFIG_DIR, build_clip
    from rsitr.training.pretrain import PretrainHooks, PretrainState, pretrain
except ImportError:  # running from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from rsitr.config import ModelParams, PretrainParams
    from rsitr.data.corpus import CsvCorpus
    from rsitr.models.factory import MODEL_CONFIG_DIR, build_clip
    from rsitr.training.pretrain import PretrainHooks, PretrainState, pretrain

TARGET = 0.9  # acceptance: rsitr >= 0.9x open_clip_train's samples/s
LR, WEIGHT_DECAY, GRAD_CLIP, SEED = 5e-4, 0.2, 1.0, 0
WORDS = {
    "what": ["buildings", "trees", "cars", "ships", "storage tanks", "airplanes", "farmland", "ponds"],
    "where": ["a river", "a road", "the coast", "a bridge", "a stadium", "a parking lot", "a port", "a forest"],
    "how": ["many", "a few", "several", "dense rows of", "scattered", "two groups of"],
}
# open_clip_train in this process: rsitr's model configs registered, threads set, optionally profiled.
LAUNCHER = """
import cProfile, logging, sys, time, torch, open_clip
class StepMarks(logging.Filter):
    def filter(self, record):
        if str(record.msg).startswith("Train Epoch"):
            record.msg = f"{record.msg} [bench wall={time.perf_counter():.6f} cpu={time.process_time():.6f}]"
        return True
logging.getLogger().addFilter(StepMarks())
config_dir, threads, profile_out, *argv = sys.argv[1:]
open_clip.add_model_config(config_dir)
torch.set_num_threads(int(threads))
from open_clip_train.main import main
if profile_out:
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(main, argv)
    profiler.dump_stats(profile_out)
else:
    main(argv)
"""
OCT_MARK = re.compile(r"Train Epoch: .*\[bench wall=([\d.]+) cpu=([\d.]+)\]")  # one line per step
Mark = tuple[float, float]  # (wall, CPU) seconds at the end of a step
PHASES: dict[str, dict[str, list[tuple[str, str]]]] = {  # trainer -> phase -> (file suffix, function) summed
    "rsitr": {
        "total": [("rsitr/training/pretrain.py", "train_epoch")],
        "data": [("rsitr/data/corpus_batches.py", "__iter__")],
        "forward+loss": [("rsitr/training/pretrain.py", "clip_loss")],
    },
    "open_clip_train": {
        "total": [("open_clip_train/train.py", "train_one_epoch")],
        "data": [("torch/utils/data/dataloader.py", "__next__")],
        "forward+loss": [("open_clip/model.py", "forward"), ("open_clip/loss.py", "forward")],
    },
}
COMMON_PHASES = {
    "backward": [("torch/_tensor.py", "backward")],
    "grad clip": [("torch/nn/utils/clip_grad.py", "clip_grad_norm_")],
    "optimizer": [("torch/optim/adam.py", "step"), ("torch/optim/optimizer.py", "zero_grad")],
}


@dataclass(frozen=True)
class Case:
    """One model at one batch size: ``steps`` optimizer steps, the first ``warmup`` not counted."""

    model: str
    batch: int
    steps: int
    warmup: int

    @classmethod
    def parse(cls, text: str) -> Case:
        model, batch, steps, warmup = text.rsplit(":", 3)
        case = cls(model, int(batch), int(steps), int(warmup))
        if case.batch < 2 or case.warmup < 1 or case.steps < case.warmup + 2:
            raise SystemExit(f"case {text!r}: need batch >= 2, warmup >= 1 and steps >= warmup + 2")
        return case


# --------------------------------------------------------------------------- data
def make_images(folder: Path, count: int, size: int, seed: int) -> list[Path]:
    """``count`` smooth random RGB PNGs (a 16x16 colour field upsampled, plus grain) in ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        field = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
        grain = rng.integers(-12, 13, field.shape, dtype=np.int16)
        path = folder / f"{index:05d}.png"
        Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def write_csv(path: Path, images: list[Path], rows: int, seed: int) -> Path:
    """An open_clip_train-style ``filepath,title`` CSV of ``rows`` rows (absolute paths, images cycled)."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filepath", "title"])
        for row in range(rows):
            how, what, where = (str(rng.choice(WORDS[key])) for key in ("how", "what", "where"))
            writer.writerow([str(images[row % len(images)].resolve()), f"an aerial image of {how} {what} near {where}"])
    return path


# --------------------------------------------------------------------------- rsitr
class _Done(Exception):
    """Raised by the step hook after the last step: no epoch-end checkpoint is written."""


def rsitr_settings(case: Case, corpus: Path, shuffle_buffer: int) -> PretrainParams:
    return PretrainParams(corpus=str(corpus), batch_size=case.batch, lr=LR, weight_decay=WEIGHT_DECAY,
                          warmup_steps=case.warmup, grad_clip=GRAD_CLIP, shuffle_buffer=shuffle_buffer, seed=SEED,
                          device="cpu", epochs=1, log_every=case.steps + 1, checkpoint_every=case.steps + 1)


def run_rsitr(case: Case, corpus: Path, work: Path, shuffle_buffer: int,
              profiler: cProfile.Profile | None = None) -> list[Mark]:
    """rsitr's pretraining loop on the CSV: the (wall, CPU) mark at the end of each step."""
    bundle = build_clip(ModelParams(arch=case.model), seed=SEED)
    ends: list[Mark] = []

    def on_step(state: PretrainState) -> None:
        ends.append((time.perf_counter(), time.process_time()))
        if state.step >= case.steps:
            raise _Done

    settings = rsitr_settings(case, corpus, shuffle_buffer)
    if profiler is not None:
        profiler.enable()
    try:
        pretrain(bundle, CsvCorpus(corpus), settings, work / "rsitr", run_key="bench", hooks=PretrainHooks(on_step=on_step))
    except _Done:
        pass
    finally:
        if profiler is not None:
            profiler.disable()
    if len(ends) != case.steps:
        raise SystemExit(f"rsitr ran {len(ends)} steps, expected {case.steps}")
    return ends


# --------------------------------------------------------------------------- open_clip_train
def oct_argv(case: Case, corpus: Path) -> list[str]:
    return [
        "--model", case.model, "--train-data", str(corpus), "--dataset-type", "csv", "--csv-separator", ",",
        "--csv-img-key", "filepath", "--csv-caption-key", "title", "--batch-size", str(case.batch),
        "--epochs", "1", "--lr", str(LR), "--wd", str(WEIGHT_DECAY), "--warmup", str(case.warmup),
        "--grad-clip-norm", str(GRAD_CLIP), "--workers", "0", "--precision", "fp32", "--device", "cpu",
        "--seed", str(SEED), "--log-every-n-steps", "1", "--logs", "none", "--name", "bench", "--report-to", "",
    ]


def run_open_clip_train(case: Case, corpus: Path, work: Path, threads: int,
                        profile_out: Path | None = None) -> list[Mark]:
    """open_clip_train on the CSV in a subprocess: the (wall, CPU) mark at the end of each step."""
    cwd = Path(tempfile.mkdtemp(prefix="oct-", dir=work))  # --logs none still writes none/bench/out.log here
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-c", LAUNCHER, str(MODEL_CONFIG_DIR), str(threads), str(profile_out or ""),
               *oct_argv(case, corpus)]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    steps = [(float(wall), float(cpu)) for wall, cpu in OCT_MARK.findall(done.stderr + done.stdout)]
    if done.returncode != 0 or len(steps) != case.steps:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"open_clip_train exited {done.returncode} after {len(steps)}/{case.steps} steps:\n{tail}")
    return steps


def check_open_clip_train() -> None:
    """Fail in a second, not after the rsitr run, when open_clip_train cannot be imported."""
    missing = [name for name in ("open_clip_train", "webdataset", "braceexpand") if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"open_clip_train needs {', '.join(missing)}: pip install -e '.[bench]' "
                         "(webdataset and braceexpand, as open_clip_torch[training])")


# --------------------------------------------------------------------------- figures
def steady(marks: list[Mark], warmup: int) -> tuple[list[float], list[float]]:
    """(wall, CPU) seconds of steps ``warmup + 1 .. N`` from the end-of-step marks."""
    kept = np.asarray(marks[warmup - 1:])  # [N - warmup + 1, 2]: from the end of the last warm-up step
    diffs = np.diff(kept, axis=0)  # [N - warmup, 2]
    return diffs[:, 0].tolist(), diffs[:, 1].tolist()


def measure(case: Case, corpus: Path, work: Path, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """Steady-state (wall, CPU) step seconds of both trainers, ``--repeats`` times, alternating the order."""
    out: dict[str, dict[str, list[float]]] = {t: {"wall": [], "cpu": []} for t in ("rsitr", "open_clip_train")}
    for repeat in range(args.repeats):
        order = ["rsitr", "open_clip_train"] if repeat % 2 == 0 else ["open_clip_train", "rsitr"]
        for trainer in order:
            start = time.perf_counter()
            if trainer == "rsitr":
                marks = run_rsitr(case, corpus, work, args.shuffle_buffer)
            else:
                marks = run_open_clip_train(case, corpus, work, args.threads)
            wall, cpu = steady(marks, case.warmup)
            out[trainer]["wall"] += wall
            out[trainer]["cpu"] += cpu
            print(f"  {case.model} b{case.batch} {trainer:<15} run {repeat + 1}: wall s/step "
                  f"{' '.join(f'{x:.3f}' for x in wall)}; median CPU s/step {statistics.median(cpu):.3f}; "
                  f"CPU/wall {sum(cpu) / sum(wall):.2f} (run {time.perf_counter() - start:.0f}s)", flush=True)
    return out


# --------------------------------------------------------------------------- profile
def phase_seconds(stats: pstats.Stats, trainer: str) -> dict[str, float]:
    """Cumulative seconds of each phase (functions summed), plus ``other`` = total - the phases."""
    entries = stats.stats  # type: ignore[attr-defined]  # {(file, line, name): (cc, nc, tt, ct, callers)}
    phases = {**PHASES[trainer], **COMMON_PHASES}
    seconds = {}
    for phase, functions in phases.items():
        seconds[phase] = sum(ct for (file, _, name), (_, _, _, ct, _) in entries.items()
                             if any(file.replace("\\", "/").endswith(suffix) and name == want
                                    for suffix, want in functions))
    seconds["other"] = seconds["total"] - sum(v for k, v in seconds.items() if k != "total")
    return seconds


def profile_case(case: Case, corpus: Path, work: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Both trainers under cProfile with a CPU-time clock: CPU ms per step of each phase."""
    profiler = cProfile.Profile(time.process_time)
    run_rsitr(case, corpus, work, args.shuffle_buffer, profiler)
    oct_file = work / f"oct-{case.model}.prof"
    run_open_clip_train(case, corpus, work, args.threads, oct_file)
    found = {"rsitr": phase_seconds(pstats.Stats(profiler), "rsitr"),
             "open_clip_train": phase_seconds(pstats.Stats(str(oct_file)), "open_clip_train")}
    return {trainer: {phase: 1000 * s / case.steps for phase, s in phases.items()} for trainer, phases in found.items()}


def print_profile(case: Case, ms: dict[str, dict[str, float]]) -> None:
    print(f"\n{case.model}, batch {case.batch}, {case.steps} steps under cProfile (CPU time, all steps, warm-up "
          "included): ms per step")
    print("| phase | rsitr ms | rsitr share | open_clip_train ms | open_clip_train share |")
    print("|---|---:|---:|---:|---:|")
    mine, theirs = ms["rsitr"], ms["open_clip_train"]
    for phase in ["data", "forward+loss", "backward", "grad clip", "optimizer", "other", "total"]:
        print(f"| {phase} | {mine[phase]:.1f} | {100 * mine[phase] / mine['total']:.0f}% | "
              f"{theirs[phase]:.1f} | {100 * theirs[phase] / theirs['total']:.0f}% |")


# --------------------------------------------------------------------------- main
def table_row(case: Case, steps: dict[str, dict[str, list[float]]]) -> dict[str, float | str | int]:
    """samples/s = batch / median step seconds; ratios rsitr / open_clip_train by wall and CPU time."""
    rate = {t: {k: case.batch / statistics.median(v) for k, v in by.items()} for t, by in steps.items()}
    mine, theirs = rate["rsitr"], rate["open_clip_train"]
    return {"model": case.model, "batch": case.batch, "steps": f"{case.steps - case.warmup}/{case.steps}",
            "rsitr": mine["wall"], "oct": theirs["wall"], "ratio": mine["wall"] / theirs["wall"],
            "ratio_cpu": mine["cpu"] / theirs["cpu"]}


def print_table(rows: list[dict], threads: int, repeats: int) -> None:
    print(f"\nsteady-state training throughput, CPU, {threads} thread(s), {repeats} run(s) each "
          "(samples/s = batch / median wall step time; steps = timed/total per run)")
    print("| model | batch | steps | rsitr samples/s | open_clip_train samples/s | ratio | ratio by CPU time | "
          f"target (>= {TARGET}) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        verdict = "met" if r["ratio"] >= TARGET else "MISSED"
        print(f"| {r['model']} | {r['batch']} | {r['steps']} | {r['rsitr']:.2f} | {r['oct']:.2f} | "
              f"{r['ratio']:.2f}x | {r['ratio_cpu']:.2f}x | {verdict} |")
    for r in rows:
        if (r["ratio"] >= TARGET) != (r["ratio_cpu"] >= TARGET):
            print(f"note: {r['model']}: the wall ratio {r['ratio']:.2f}x and the CPU-time ratio {r['ratio_cpu']:.2f}x "
                  f"disagree about the target: the runs got different shares of the cores (CPU/wall above); "
                  f"rerun with --repeats 2, or on an idle machine")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="rsitr-tiny:32:20:4,ViT-B-32:8:3:1",
                    help="comma-separated model:batch:steps:warmup (warm-up steps are not timed)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both trainers")
    ap.add_argument("--repeats", type=int, default=1, help="runs per trainer and case (order alternates)")
    ap.add_argument("--images", type=int, default=256, help="distinct PNGs in the corpus (rows cycle through them)")
    ap.add_argument("--image-px", type=int, default=256, help="side of the generated PNGs")
    ap.add_argument("--shuffle-buffer", type=int, default=64, help="rsitr's pretrain.shuffle_buffer")
    ap.add_argument("--profile", action="store_true", help="also run both under cProfile: per-phase step time")
    ap.add_argument("--workdir", default=None, help="keep the corpus and logs here (default: a temp dir)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    args = parse_args(argv)
    cases = [Case.parse(text) for text in args.cases.split(",") if text]
    check_open_clip_train()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(args.workdir or tmp)
        start = time.perf_counter()
        images = make_images(work / "images", args.images, args.image_px, SEED)
        print(f"{len(images)} PNGs of {args.image_px}px in {time.perf_counter() - start:.1f}s; threads {args.threads}; "
              f"torch {torch.__version__}", flush=True)
        rows, profiles = [], []
        for case in cases:
            corpus = write_csv(work / f"corpus-{case.model}-{case.batch}.csv", images, case.batch * case.steps, SEED)
            rows.append(table_row(case, measure(case, corpus, work, args)))
            if args.profile:
                profiles.append((case, profile_case(case, corpus, work, args)))
        print_table(rows, args.threads, args.repeats)
        for case, ms in profiles:
            print_profile(case, ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
