"""Continual CLIP pretraining on an image-caption corpus (RemoteCLIP, GeoRSCLIP / RS5M).

The loop of open_clip_train on one process: batches of one caption per image streamed from
a CSV or WebDataset corpus (``rsitr.data.corpus_batches``, so a corpus larger than memory
trains), open_clip's ``ClipLoss`` (symmetric cross-entropy over the batch with the
learnable ``logit_scale``), AdamW with decay on matrices only, linear warm-up then cosine,
gradient clipping, and ``logit_scale`` clamped to ln 100 after every step.

Resumable mid-epoch: ``last.pt`` (every ``checkpoint_every`` steps and at each epoch end)
holds the weights, optimizer, scheduler, RNG states, the epoch and the batches it has seen;
a resumed run skips those batches (same shuffle) and reproduces the uninterrupted weights
exactly. The result is ``foundation.pt``: a plain open_clip state dict that
``model.pretrained=<file>`` loads (``rsitr.models.factory``).

The loop knows no artifact layout: the application passes the corpus and the output folder
(``rsitr.app.steps.pretrain``).
"""

from __future__ import annotations

import logging

import csv
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from rsitr.atomic import atomic_path
from rsitr.config import PretrainParams, TrainParams
from rsitr.data.corpus import CorpusSample, CsvCorpus
from rsitr.data.corpus_batches import CorpusBatches, Transform
from rsitr.data.images import ImageLoader
from rsitr.errors import ConfigError
from rsitr.models import resolve_device
from rsitr.models.factory import ClipBundle
from rsitr.models.text_tower import pooled_text
from rsitr.training.checkpoint import remove_stale_temporaries
from rsitr.training.optim import build_optimizer, warmup_cosine
from rsitr.training.rng import rng_state, seed_everything, set_rng_state
from rsitr.training.trainer import TrainingDiverged

logger = logging.getLogger(__name__)

PRETRAIN_FORMAT = "rsitr-pretrain/1"
CHECKPOINT_LAST = "last.pt"
FOUNDATION_FILE = "foundation.pt"
MAX_LOGIT_SCALE = math.log(100.0)  # open_clip_train clamps logit_scale to [0, ln 100]

StepHook = Callable[["PretrainState"], None]


@dataclass
class PretrainState:
    """Where pretraining stands: what ``last.pt`` stores beside weights, optimizer and schedule."""

    epoch: int = 0  # the epoch in progress (0-based)
    batches_seen: int = 0  # batches of that epoch already trained on
    step: int = 0  # optimizer steps in all
    losses: list[float] = field(default_factory=list)  # every step's loss


@dataclass
class PretrainResult:
    checkpoint: str
    steps: int
    samples: int  # samples trained on by this process (a resumed run counts its own)
    seconds: float
    samples_per_s: float
    final_loss: float
    logit_scale: float
    samples_per_epoch: int
    resumed_from_step: int
    losses: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class PretrainHooks:
    """What the caller watches a run with: a metrics tracker, a per-step callback, progress log lines."""

    tracker: Any | None = None  # has log_metrics(values, step=...)
    on_step: StepHook | None = None  # called after each step (and its checkpoint)
    progress: bool = False


@dataclass
class Run:
    """Everything one pretraining process holds."""

    settings: PretrainParams
    clip: torch.nn.Module
    device: torch.device
    batches: CorpusBatches
    optimizer: torch.optim.Optimizer
    scheduler: Any
    loss_fn: ClipLoss
    out: Path
    run_key: str
    samples_per_epoch: int
    hooks: PretrainHooks = PretrainHooks()

    @property
    def last_path(self) -> Path:
        return self.out / CHECKPOINT_LAST

    def log(self, values: dict[str, float], step: int) -> None:
        if self.hooks.tracker is not None:
            self.hooks.tracker.log_metrics(values, step=step)


# --------------------------------------------------------------------------- pieces
def count_samples(corpus: Iterable[CorpusSample]) -> int:
    """Samples in one epoch: the CSV's rows (images not opened), else one streamed pass."""
    if isinstance(corpus, CsvCorpus):
        with open(corpus.path, encoding="utf-8", newline="") as handle:
            return sum(1 for _ in csv.DictReader(handle, delimiter=corpus.separator))
    return sum(1 for _ in corpus)


def normalized_transform(bundle: ClipBundle) -> Transform:
    """The model's open_clip preprocessing of a PIL image (``ImageLoader``, as evaluation): ``[3, S, S]``."""
    return ImageLoader.from_cfg(bundle.preprocess, cache=False).pixels


def clip_loss(clip: torch.nn.Module, loss_fn: ClipLoss, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ClipLoss on L2-normalised features and ``exp(logit_scale)``."""
    image_features = clip.encode_image(images, normalize=True)  # [B, D]
    text_features = F.normalize(pooled_text(clip, tokens), dim=-1)  # [B, D] (trailing padding skipped: exact)
    return loss_fn(image_features, text_features, clip.logit_scale.exp())


def _optimizer_and_schedule(clip: torch.nn.Module, settings: PretrainParams, steps_per_epoch: int):
    train = TrainParams(optimizer="adamw", lr=settings.lr, weight_decay=settings.weight_decay)
    optimizer = build_optimizer(clip, train)
    total = max(1, settings.epochs * steps_per_epoch)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, settings.warmup_steps))


def _atomic_save(payload: dict[str, Any], path: Path) -> Path:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


# --------------------------------------------------------------------------- checkpoints
def save_last(run: Run, state: PretrainState) -> Path:
    """``last.pt``: everything a resumed run needs to reproduce the uninterrupted one."""
    return _atomic_save({
        "format": PRETRAIN_FORMAT,
        "run_key": run.run_key,
        "model": {k: v.detach().cpu() for k, v in run.clip.state_dict().items()},
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "rng": rng_state(),
        "epoch": state.epoch,
        "batches_seen": state.batches_seen,
        "step": state.step,
        "losses": list(state.losses),
        "samples_per_epoch": run.samples_per_epoch,
    }, run.last_path)


def read_last(path: Path) -> dict[str, Any] | None:
    """The pretraining checkpoint at ``path`` (None when absent or not one of ours)."""
    if not path.is_file():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=False)
    return payload if isinstance(payload, dict) and payload.get("format") == PRETRAIN_FORMAT else None


def restore(run: Run, payload: dict[str, Any]) -> PretrainState:
    run.clip.load_state_dict(payload["model"], strict=True)
    run.optimizer.load_state_dict(payload["optimizer"])
    run.scheduler.load_state_dict(payload["scheduler"])
    set_rng_state(payload["rng"])
    return PretrainState(payload["epoch"], payload["batches_seen"], payload["step"], list(payload["losses"]))


def save_foundation(clip: torch.nn.Module, path: Path) -> Path:
    """The foundation model: a plain open_clip ``CLIP`` state dict (what ``model.pretrained`` reads)."""
    return _atomic_save({k: v.detach().cpu().contiguous() for k, v in clip.state_dict().items()}, path)


# --------------------------------------------------------------------------- the loop
def train_step(run: Run, state: PretrainState, batch: dict[str, Any]) -> float:
    """One optimizer step on one batch; ``logit_scale`` clamped to [0, ln 100] afterwards."""
    images = batch["images"].to(run.device, non_blocking=True)  # [B, 3, S, S]
    tokens = batch["tokens"].to(run.device, non_blocking=True)  # [B, L]
    loss = clip_loss(run.clip, run.loss_fn, images, tokens)
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"pretraining loss became {float(loss)} at step {state.step}; lower pretrain.lr "
                                 f"(now {run.settings.lr:g}) and resume from {run.last_path} with --resume")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.settings.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.clip.parameters(), run.settings.grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    with torch.no_grad():
        run.clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
    return float(loss.detach())


def _after_step(run: Run, state: PretrainState, loss: float) -> None:
    state.step += 1
    state.batches_seen += 1
    state.losses.append(loss)
    if state.step % run.settings.log_every == 0:
        run.log({"train_loss": loss, "logit_scale": float(run.clip.logit_scale.detach().exp()),
                 "lr": run.scheduler.get_last_lr()[0]}, step=state.step)
    if state.step % run.settings.checkpoint_every == 0:
        save_last(run, state)
    if run.hooks.on_step is not None:
        run.hooks.on_step(state)


def _epoch_batches(run: Run, state: PretrainState) -> Iterator[dict[str, Any]]:
    run.batches.set_epoch(state.epoch, skip_batches=state.batches_seen)
    return iter(run.batches)


def train_epoch(run: Run, state: PretrainState) -> int:
    """The rest of epoch ``state.epoch``; returns the samples trained on, then checkpoints the epoch end."""
    samples = 0
    run.clip.train()
    for batch in _epoch_batches(run, state):
        loss = train_step(run, state, batch)
        samples += batch["images"].shape[0]
        _after_step(run, state, loss)
        if run.hooks.progress and state.step % run.settings.log_every == 0:
            logger.info(f"pretrain epoch {state.epoch + 1}/{run.settings.epochs} step {state.step}: loss {loss:.4f}")
    state.epoch, state.batches_seen = state.epoch + 1, 0
    save_last(run, state)
    return samples


def prepare_run(bundle: ClipBundle, corpus: Iterable[CorpusSample], settings: PretrainParams, out_dir: Path, *,
                run_key: str = "", hooks: PretrainHooks = PretrainHooks()) -> Run:
    """Seeded model on its device, streamed batches, optimizer and schedule (nothing trained yet)."""
    seed_everything(settings.seed)
    device = resolve_device(settings.device)
    clip = bundle.clip.to(device)
    samples = settings.samples_per_epoch or count_samples(corpus)
    steps = samples // settings.batch_size
    if steps < 1:
        raise ConfigError(f"the corpus has {samples} samples, fewer than one batch of pretrain.batch_size="
                         f"{settings.batch_size}; lower the batch size or use a larger corpus")
    batches = CorpusBatches(corpus, settings.batch_size, normalized_transform(bundle), bundle.tokenizer,
                            shuffle_buffer=settings.shuffle_buffer, seed=settings.seed)
    optimizer, scheduler = _optimizer_and_schedule(clip, settings, steps)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)
    return Run(settings, clip, device, batches, optimizer, scheduler, ClipLoss(), out_dir, run_key, samples, hooks)


def _resume_state(run: Run, resume: bool) -> PretrainState:
    payload = read_last(run.last_path) if resume else None
    if payload is None or payload.get("run_key") != run.run_key:
        if resume and run.last_path.is_file():
            logger.info(f"{run.last_path} belongs to another configuration or corpus; pretraining from the start")
        return PretrainState()
    state = restore(run, payload)
    logger.info(f"resuming pretraining from {run.last_path}: epoch {state.epoch + 1}, {state.batches_seen} batches seen, "
          f"step {state.step}")
    return state


def pretrain(bundle: ClipBundle, corpus: Iterable[CorpusSample], settings: PretrainParams, out_dir: str | Path, *,
             resume: bool = False, run_key: str = "", hooks: PretrainHooks = PretrainHooks()) -> PretrainResult:
    """Continual CLIP pretraining of ``bundle.clip`` on ``corpus``; ``last.pt`` and ``foundation.pt`` in ``out_dir``.

    ``run_key`` names the configuration (the application passes its fingerprint): ``resume``
    continues ``last.pt`` only when it carries the same key. ``hooks.on_step`` is called after
    each step (and its checkpoint), e.g. to stop a run in tests.
    """
    run = prepare_run(bundle, corpus, settings, Path(out_dir), run_key=run_key, hooks=hooks)
    state = _resume_state(run, resume)
    first_step, samples, started = state.step, 0, time.perf_counter()
    while state.epoch < settings.epochs:
        samples += train_epoch(run, state)
    seconds = time.perf_counter() - started
    path = save_foundation(run.clip, run.out / FOUNDATION_FILE)
    return PretrainResult(
        checkpoint=str(path), steps=state.step, samples=samples, seconds=seconds,
        samples_per_s=samples / max(seconds, 1e-9), final_loss=state.losses[-1] if state.losses else float("nan"),
        logit_scale=float(run.clip.logit_scale.detach().exp()), samples_per_epoch=run.samples_per_epoch,
        resumed_from_step=first_step, losses=list(state.losses),
    )
