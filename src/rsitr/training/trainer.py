"""Train one variant: the loop every method shares (open_clip_train is the model).

The model returns a dict of features; the variant's loss returns a dict of named scalar
terms; the trainer sums them, steps the optimizer (Adam/AdamW, warm-up then cosine,
PE-RSITR's step or ViLT's linear schedule, gradient clipping, bf16 autocast on CUDA), clamps a
learnable logit scale at ln 100 after every step (open_clip_train) and logs every term.

A paper epoch is one pass over every training caption (``rsitr.training.data``); the run is
the variant's paper epochs times the one budget factor ``train.budget``
(``rsitr.training.schedule``): it reads the data pass by pass, stops at the scaled step count,
and starts each scaled paper epoch with the loss's ``on_epoch_start`` (EBAKER's EBA).
``train_pairs``, ``steps_per_pass`` and ``total_steps`` are logged; the result's
``optimizer_steps`` counts the run's own steps, so a variant started from another's checkpoint
does not inherit its parent's. There is no
gradient accumulation: a per-micro-batch contrastive loss would shrink the negatives to the
micro-batch (``docs/methods.md``). After each pass it measures validation mR, keeps the best checkpoint, and writes the last one
atomically with everything needed to resume exactly (optimizer, scheduler, RNG states,
the loss's own state such as EBAKER's similarity bank).

The trainer knows no artifact layout: the application passes the output folder, the
processed manifest and the keyword list (``rsitr.app.steps.training``).
"""

from __future__ import annotations

import logging

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from rsitr.config import RsitrParams, VariantParams
from rsitr.data.images import ImageLoader
from rsitr.data.manifest import RetrievalSplit, select_split
from rsitr.errors import RsitrError
from rsitr.losses import build_variant_loss
from rsitr.models import build_model, resolve_device
from rsitr.models.describe import count_parameters
from rsitr.models.retrieval_model import RetrievalModel
from rsitr.models.trained import load_checkpoint
from rsitr.retrieval.evaluate import evaluate_split
from rsitr.training.checkpoint import remove_stale_temporaries, save_checkpoint
from rsitr.training.data import TrainPairs, token_length_report, train_batches
from rsitr.training.distributed import DistributedContext, GlobalBatchLoss, barrier, init_distributed
from rsitr.training.optim import build_optimizer, build_scheduler, steps_per_epoch
from rsitr.training.schedule import TrainSchedule
from rsitr.training.rng import gather_rng_states, peak_memory_mb, seed_everything, set_rng_state

logger = logging.getLogger(__name__)

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"


class TrainingDiverged(RsitrError):
    """A loss became NaN or infinite."""


@dataclass
class TrainResult:
    variant: str
    run_id: str | None
    epochs: int  # paper epochs (train.epochs)
    budget: float  # train.budget: the run is budget x epochs data passes
    data_passes: float  # passes over the training captions actually read (optimizer_steps / steps_per_pass)
    best_epoch: int
    best_val_mR: float | None
    optimizer_steps: int  # this run's own steps (a variant started from another counts from 0); 0 zero-shot
    train_seconds: float
    epoch_seconds: float
    peak_memory_mb: float
    checkpoint: str
    checkpoint_bytes: int
    total_params: int
    trainable_params: int
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Progress:
    """Where training stands: what ``last.pt`` stores beside the weights and optimizer."""

    epoch: int = 0
    global_step: int = 0
    best_val: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class Session:
    """Everything one training run holds."""

    params: RsitrParams
    variant: VariantParams
    out: Path
    device: torch.device
    context: DistributedContext
    model: RetrievalModel
    tracker: Any | None
    progress_bar: bool
    total_params: int
    trainable_params: int
    forward_model: torch.nn.Module | None = None
    loss_fn: torch.nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    dataset: TrainPairs | None = None
    loader: ImageLoader | None = None
    schedule: TrainSchedule | None = None
    val_split: RetrievalSplit | None = None
    run_key: str = ""
    resume_lr: float | None = None
    started: float = field(default_factory=time.perf_counter)
    epoch_times: list[float] = field(default_factory=list)

    @property
    def main(self) -> bool:
        return self.context.is_main

    @property
    def last_path(self) -> Path:
        return self.out / CHECKPOINT_LAST

    def log(self, values: dict[str, float], step: int | None = None) -> None:
        if self.tracker is not None:
            self.tracker.log_metrics(values, step=step)


@dataclass(frozen=True, eq=False)
class TrainJob:
    """What one training run is given beside the params; the application fills it.

    ``run_key`` names the run (the application passes the step fingerprint): every checkpoint
    stores it, and ``resume`` continues ``last.pt`` only when it carries the same key;
    ``resume_lr`` replaces the optimizer's base learning rate when resuming (e.g. after a NaN).
    """

    out_dir: Path
    manifest: pd.DataFrame
    keywords: Sequence[str] | None = None
    resume: bool = False
    tracker: Any | None = None
    progress: bool = True
    context: DistributedContext | None = None
    run_key: str = ""
    resume_lr: float | None = None


def train_variant(params: RsitrParams, variant_name: str, job: TrainJob) -> TrainResult:
    """Train ``variant_name`` on the manifest's train split; checkpoints go to ``job.out_dir``.

    Under torchrun (``WORLD_SIZE`` > 1) every rank trains its shard of each global batch
    with DistributedDataParallel; only rank 0 logs, validates and writes checkpoints.
    """
    session = _start_session(params, params.variant(variant_name), job)
    if not session.variant.trains:
        return _zero_shot(session)
    _prepare_training(session, job.manifest)
    state = _restore(session) if job.resume and _resumable(session) else _fresh_state(session)
    _wrap_for_ddp(session)
    for data_pass in range(state.epoch, session.schedule.passes):
        _train_epoch(session, state, data_pass)
        barrier(session.context)
    return _finish(session, state)


def _start_session(params: RsitrParams, variant: VariantParams, job: TrainJob) -> Session:
    train = variant.train
    device = resolve_device(train.device)
    context = job.context or init_distributed(device)
    if context.enabled and device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
    out = Path(job.out_dir)
    if context.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(out)
    seed_everything(train.seed)  # identical initial weights on every rank
    model = build_model(params, variant)
    if job.keywords is not None:
        model.set_keywords(job.keywords)
    if train.init_from:
        model.load_saved_state_dict(load_checkpoint(train.init_from)["model"])
    model.to(device)
    counts = count_parameters(model)
    total, trainable = counts.total, counts.trainable if variant.trains else 0
    session = Session(params, variant, out, device, context, model, job.tracker, job.progress and context.is_main,
                      total, trainable)
    session.run_key, session.resume_lr = job.run_key, job.resume_lr
    session.log({"total_params": total, "trainable_params": trainable})
    return session


def _zero_shot(session: Session) -> TrainResult:
    """An evaluation-only method: the checkpoint is the untouched base model."""
    if not session.main:
        return _result(session, Progress(), "", 0)
    path = save_checkpoint(session.out / CHECKPOINT_BEST, model=session.model, variant=session.variant,
                           params=session.params, epoch=0, run_key=session.run_key, run_id=_run_id(session))
    return _result(session, Progress(best_epoch=0), str(path), path.stat().st_size)


def _prepare_training(session: Session, manifest: pd.DataFrame) -> None:
    """Splits, data, loss, optimizer and schedule of a training method."""
    params, train = session.params, session.variant.train
    normalize = params.text.normalize_arabic
    splits = {name: select_split(manifest, name, datasets=train.datasets, languages=train.languages,
                                 normalize_arabic=normalize) for name in ("train", "val")}
    _report_token_lengths(session, splits["train"])
    model = session.model
    session.val_split = splits["val"]
    session.loader = ImageLoader.for_model(model, cache=train.num_workers == 0)
    session.dataset = TrainPairs(splits["train"], session.loader, train.augment, seed=train.seed)
    loss_fn = build_variant_loss(params, session.variant).to(session.device)
    session.loss_fn = GlobalBatchLoss(loss_fn, session.context) if session.context.enabled else loss_fn
    session.optimizer = build_optimizer(model, train)
    steps = steps_per_epoch(len(session.dataset), train.batch_size * session.context.world_size)
    session.schedule = TrainSchedule.of(train.epochs, train.budget, steps)
    session.scheduler = build_scheduler(session.optimizer, train, session.schedule)
    session.log({"train_pairs": len(session.dataset), "train_images": session.dataset.num_images,
                 "train_image_groups": session.dataset.num_groups, "steps_per_pass": steps,
                 "total_steps": session.schedule.total_steps, "budget": train.budget})


def _report_token_lengths(session: Session, split: RetrievalSplit) -> None:
    model = session.model
    lengths = token_length_report(model.tokenizer, split, model.context_length)
    for language, stats in lengths.items():
        if stats["truncated_share"] > 0:
            logger.warning(f"{stats['truncated_share']:.1%} of {language} training captions exceed the "
                  f"{model.context_length}-token context and are truncated (max {stats['max_tokens']} tokens)")
    session.log({f"tokens.{lang}.{k}": v for lang, stats in lengths.items() for k, v in stats.items()})


def _fresh_state(session: Session) -> Progress:
    if session.context.enabled:
        torch.manual_seed(session.variant.train.seed + 1000 * session.context.rank)  # distinct dropout streams
    return Progress()


def _resumable(session: Session) -> bool:
    """``last.pt`` exists and belongs to this run (same run key); otherwise start afresh."""
    if not session.last_path.is_file():
        return False
    key = load_checkpoint(session.last_path).get("run_key", "")
    if key != session.run_key:
        if session.main:
            logger.info(f"{session.variant.name}: {session.last_path} belongs to another configuration or data version; "
                  "training from the start")
        return False
    return True


def _restore(session: Session) -> Progress:
    """Weights, loss state, optimizer, schedule and every rank's RNG stream from ``last.pt``."""
    state = load_checkpoint(session.last_path)
    session.model.load_saved_state_dict(state["model"])
    session.loss_fn.load_state_dict(state["loss_state"])
    session.optimizer.load_state_dict(state["optimizer"])
    session.scheduler.load_state_dict(state["scheduler"])
    rng = state["rng"]
    set_rng_state(rng[session.context.rank] if isinstance(rng, list) else rng)
    if session.resume_lr is not None:
        _replace_base_lr(session, session.resume_lr)
    if session.main:
        lr = f" with base lr {session.resume_lr:g}" if session.resume_lr is not None else ""
        logger.info(f"resuming {session.variant.name} from {session.last_path} after epoch {state['epoch']}{lr}")
    return Progress(state["epoch"], state["global_step"], state["best_val"], state["best_epoch"], state["history"])


def _replace_base_lr(session: Session, lr: float) -> None:
    """A new base learning rate for the rest of the schedule (the warm-up/cosine factor is kept)."""
    scheduler = session.scheduler
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    scheduler.base_lrs = [lr for _ in scheduler.base_lrs]
    for group in session.optimizer.param_groups:
        group["initial_lr"], group["lr"] = lr, lr * factor


def _wrap_for_ddp(session: Session) -> None:
    session.forward_model = session.model
    if session.context.enabled:
        device = session.device
        session.forward_model = torch.nn.parallel.DistributedDataParallel(
            session.model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False
        )


def _train_epoch(session: Session, state: Progress, epoch: int) -> None:
    """Pass ``epoch`` over the training items (up to the run's step count), then validation and
    checkpoints (rank 0); each scaled paper epoch starting on the way starts the loss's epoch."""
    train, schedule = session.variant.train, session.schedule
    started = time.perf_counter()
    session.model.train()
    batches = train_batches(session.dataset, train.batch_size, epoch, train.num_workers, session.model.tokenize,
                            session.context)
    limit = schedule.steps_in_pass(epoch)
    bar = tqdm(batches, desc=f"{session.variant.name} pass {epoch + 1}/{schedule.passes}", total=limit,
               disable=None if session.progress_bar else True, leave=False, mininterval=1.0)
    sums: dict[str, float] = {}
    seen, steps = 0, 0
    for step, batch in enumerate(bar):
        if step >= limit:
            break
        for paper_epoch in schedule.epochs_starting_at(state.global_step):
            session.loss_fn.on_epoch_start(paper_epoch)
        terms = _train_step(session, state, epoch, step, batch)
        steps, seen = step + 1, seen + batch["images"].shape[0]
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + value
        bar.set_postfix(loss=f"{terms['loss']:.4f}", samples_per_s=f"{seen / max(time.perf_counter() - started, 1e-9):.0f}")
    session.optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - started
    session.epoch_times.append(seconds)
    record = {f"epoch_{k}": v / max(1, steps) for k, v in sums.items()}
    record.update(session.loss_fn.epoch_summary())
    rng_states = gather_rng_states(session.context)
    if session.main:
        _end_epoch(session, state, epoch, record, seconds, rng_states)


def _train_step(session: Session, state: Progress, epoch: int, step: int, batch: dict[str, Any]) -> dict[str, float]:
    """Forward, loss terms, backward, optimizer step, logit-scale clamp."""
    train = session.variant.train
    batch = {k: v.to(session.device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    extra = {k: v for k, v in batch.items() if k not in ("images", "tokens")}
    use_amp = train.amp and session.device.type == "cuda"
    with torch.autocast(session.device.type, dtype=torch.bfloat16, enabled=use_amp):
        outputs = session.forward_model(batch["images"], batch["tokens"], **extra)
        terms = session.loss_fn(outputs, batch)
    loss = sum(terms.values())
    if not torch.isfinite(loss):
        raise TrainingDiverged(_divergence_message(session, state, epoch, step, terms, float(loss.item())))
    loss.backward()
    if train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in session.model.parameters() if p.requires_grad], train.grad_clip)
    session.optimizer.step()
    session.scheduler.step()
    session.optimizer.zero_grad(set_to_none=True)
    session.model.clamp_logit_scale()  # open_clip: logit_scale in [0, ln 100] after every step
    state.global_step += 1
    values = {k: float(v.detach()) for k, v in {"loss": loss, **terms}.items()}
    if state.global_step % train.log_every == 0:
        session.log({f"train_{k}": v for k, v in values.items()}, step=state.global_step)
    return values


def _divergence_message(session: Session, state: Progress, epoch: int, step: int, terms: dict[str, Any],
                        value: float) -> str:
    name, lr = session.variant.name, session.variant.train.lr
    where = (f"{name}: loss became {value} at data pass {epoch + 1}, step {step} "
             f"(terms: { {k: float(v.detach()) for k, v in terms.items()} })")
    if state.epoch == 0:
        return (f"{where}; no data pass finished, so there is nothing to resume: lower the learning rate and train "
                f"again, e.g. --set variants.{name}.train.lr={lr / 10:g} (or set train.grad_clip)")
    return (f"{where}; the last good pass ({state.epoch}) is kept in {session.last_path}. Continue from it with a "
            f"lower learning rate: rsitr train --variant {name} --resume --resume-lr {lr / 10:g}")


def _end_epoch(session: Session, state: Progress, epoch: int, record: dict[str, float], seconds: float,
               rng_states: Any) -> None:
    """Validate, keep the best checkpoint, write ``last.pt`` atomically."""
    params, variant, model = session.params, session.variant, session.model
    validation = evaluate_split(model, session.val_split, session.loader, params.eval.batch_size,
                                session.device)["metrics"]
    record.update({f"val_{k}": v for k, v in validation.items()})
    record.update({"epoch": epoch + 1, "paper_epoch": session.schedule.paper_epoch(state.global_step),
                   "epoch_seconds": seconds, "lr": session.scheduler.get_last_lr()[0]})
    state.history.append(record)
    state.epoch = epoch + 1
    session.log(record, step=epoch + 1)
    if validation["mR"] > state.best_val:
        state.best_val, state.best_epoch = validation["mR"], epoch + 1
        save_checkpoint(session.out / CHECKPOINT_BEST, model=model, variant=variant, params=params, epoch=epoch + 1,
                        loss_fn=session.loss_fn, run_key=session.run_key, run_id=_run_id(session))
    save_checkpoint(
        session.last_path, model=model, variant=variant, params=params, epoch=epoch + 1, loss_fn=session.loss_fn,
        optimizer=session.optimizer, scheduler=session.scheduler, rng=rng_states, global_step=state.global_step,
        best_val=state.best_val, best_epoch=state.best_epoch, history=state.history, run_key=session.run_key,
        run_id=_run_id(session),
    )
    logger.info(f"{variant.name} pass {epoch + 1}/{session.schedule.passes} (paper epoch {record['paper_epoch']:.2f} "
                f"of {variant.train.epochs}): loss {record.get('epoch_loss', float('nan')):.4f} "
                f"val mR {validation['mR']:.2f} ({seconds:.1f}s)")


def _run_id(session: Session) -> str | None:
    """The MLflow run a checkpoint belongs to (None when untracked)."""
    return getattr(session.tracker, "run_id", None)


def _finish(session: Session, state: Progress) -> TrainResult:
    if session.main:
        session.loss_fn.write_artifacts(session.out)  # e.g. EBA's eliminated.json
    if not session.main:
        return _result(session, state, "", 0)
    best = session.out / CHECKPOINT_BEST
    return _result(session, state, str(best), best.stat().st_size)


def _result(session: Session, state: Progress, checkpoint: str, size: int) -> TrainResult:
    tracker = session.tracker
    return TrainResult(
        variant=session.variant.name,
        run_id=getattr(tracker, "run_id", None) if session.main else None,
        epochs=session.variant.train.epochs if session.variant.trains else 0,
        budget=session.variant.train.budget,
        data_passes=state.global_step / session.schedule.steps_per_pass if session.schedule else 0.0,
        best_epoch=state.best_epoch if session.variant.trains else 0,
        best_val_mR=state.best_val if (session.main and session.variant.trains) else None,
        optimizer_steps=state.global_step if session.variant.trains else 0,
        train_seconds=time.perf_counter() - session.started if session.variant.trains else 0.0,
        epoch_seconds=float(np.mean(session.epoch_times)) if session.epoch_times else 0.0,
        peak_memory_mb=peak_memory_mb(session.device) if session.main else 0.0,
        checkpoint=checkpoint,
        checkpoint_bytes=size,
        total_params=session.total_params,
        trainable_params=session.trainable_params,
        history=state.history if session.main else [],
    )


def write_train_summary(result: TrainResult, path: Path) -> dict[str, Any]:
    """``train.json``: the result without the per-epoch history, plus the final epoch's record and the
    validation curve (``val_curve``: one ``{"epoch", "paper_epoch", "val_mR"}`` per data pass; empty for zero-shot)."""
    summary = {k: v for k, v in asdict(result).items() if k != "history"}
    summary["final"] = result.history[-1] if result.history else {}
    summary["val_curve"] = [{"epoch": int(r["epoch"]), "paper_epoch": r.get("paper_epoch", r["epoch"]),
                             "val_mR": r["val_mR"]} for r in result.history if "val_mR" in r]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary
