"""Train one variant: the loop every method shares (open_clip_train is the model).

The model returns a dict of features; the variant's loss returns a dict of named scalar
terms; the trainer sums them, steps the optimizer (Adam/AdamW, warm-up then cosine,
gradient clipping and accumulation, bf16 autocast on CUDA) and logs every term. After
each epoch it measures validation mR, keeps the best checkpoint, and writes the last one
atomically with everything needed to resume exactly (optimizer, scheduler, RNG states,
the loss's own state such as EBAKER's similarity bank).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rsitr.config import RsitrParams, TrainParams, VariantParams
from rsitr.errors import RsitrError
from rsitr.models import build_model, build_variant_loss
from rsitr.retrieval.evaluate import evaluate_split
from rsitr.training.checkpoint import load_checkpoint, save_checkpoint
from rsitr.training.distributed import DistributedContext, GlobalBatchLoss, barrier, init_distributed
from rsitr.training.data import (
    ImageLoader,
    TrainPairs,
    read_manifest,
    select_split,
    token_length_report,
    train_batches,
)

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"


class TrainingDiverged(RsitrError):
    """A loss became NaN or infinite."""


@dataclass
class TrainResult:
    variant: str
    run_id: str | None
    epochs: int
    best_epoch: int
    best_val_mR: float | None
    train_seconds: float
    epoch_seconds: float
    peak_memory_mb: float
    checkpoint: str
    checkpoint_bytes: int
    total_params: int
    trainable_params: int
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def manifest_path(params: RsitrParams) -> Path:
    return Path(params.paths.data) / "processed" / "manifest.parquet"


def model_dir(params: RsitrParams, variant: str) -> Path:
    return Path(params.paths.models) / variant


def build_optimizer(model: torch.nn.Module, train: TrainParams) -> torch.optim.Optimizer:
    """Weight decay on matrices only; gains, biases, embeddings' scale and temperature are exempt."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exempt = parameter.ndim < 2 or "logit_scale" in name or name.endswith(("bias", "class_embedding"))
        (no_decay if exempt else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=train.lr)
    if train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=train.lr, momentum=0.9)
    return torch.optim.Adam(groups, lr=train.lr)


def warmup_cosine(total_steps: int, warmup_steps: int):
    """LR multiplier: linear warm-up to 1, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _gather_rng_states(context: DistributedContext) -> dict[str, Any] | list[dict[str, Any]]:
    """Every rank's RNG state (rank 0 saves them all, so each rank resumes its own stream)."""
    state = _rng_state()
    if not context.enabled:
        return state
    import torch.distributed as dist

    states: list[Any] = [None] * context.world_size
    dist.all_gather_object(states, state)
    return states


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def train_variant(
    params: RsitrParams,
    variant_name: str,
    *,
    resume: bool = False,
    tracker: Any | None = None,
    progress: bool = True,
    context: DistributedContext | None = None,
) -> TrainResult:
    """Train ``variant_name`` on the train split; checkpoints go to ``models/<variant>/``.

    Under torchrun (``WORLD_SIZE`` > 1) every rank trains its shard of each global batch
    with DistributedDataParallel; only rank 0 logs, validates and writes checkpoints.
    """
    variant: VariantParams = params.variant(variant_name)
    train = variant.train
    out = model_dir(params, variant_name)
    device = resolve_device(train.device)
    context = context or init_distributed(device)
    if context.enabled and device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
    main = context.is_main
    if main:
        out.mkdir(parents=True, exist_ok=True)
    progress = progress and main
    seed_everything(train.seed)  # identical initial weights on every rank

    model = build_model(params, variant)
    if train.init_from:
        model.load_saved_state_dict(load_checkpoint(train.init_from)["model"])
    model.to(device)
    total_params = sum(p.numel() for p in model.parameters())
    trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad) if variant.trains else 0
    if tracker is not None:
        tracker.log_metrics({"total_params": total_params, "trainable_params": trainable_params})

    if not variant.trains:  # zero-shot: the checkpoint is the untouched base model
        if not main:
            return TrainResult(variant_name, None, 0, 0, None, 0.0, 0.0, 0.0, "", 0, total_params, trainable_params)
        path = save_checkpoint(out / CHECKPOINT_BEST, model=model, variant=variant, params=params, epoch=0)
        return TrainResult(variant_name, getattr(tracker, "run_id", None), 0, 0, None, 0.0, 0.0,
                           _peak_memory_mb(device), str(path), path.stat().st_size, total_params, trainable_params)

    manifest = read_manifest(manifest_path(params))
    normalize = params.text.normalize_arabic
    train_split = select_split(manifest, "train", datasets=train.datasets, languages=train.languages,
                               normalize_arabic=normalize)
    val_split = select_split(manifest, "val", datasets=train.datasets, languages=train.languages,
                             normalize_arabic=normalize)
    lengths = token_length_report(model.tokenizer, train_split, model.context_length)
    for language, stats in lengths.items():
        if stats["truncated_share"] > 0:
            print(f"warning: {stats['truncated_share']:.1%} of {language} training captions exceed the "
                  f"{model.context_length}-token context and are truncated (max {stats['max_tokens']} tokens)")
    if tracker is not None:
        tracker.log_metrics({f"tokens.{lang}.{k}": v for lang, stats in lengths.items() for k, v in stats.items()})
    loader = ImageLoader(model.image_size, model.mean, model.std, cache=train.num_workers == 0)
    dataset = TrainPairs(train_split, loader, train.augment, seed=train.seed)
    loss_fn = build_variant_loss(params, variant).to(device)
    if context.enabled:
        loss_fn = GlobalBatchLoss(loss_fn, context)
    optimizer = build_optimizer(model, train)
    global_batch = train.batch_size * context.world_size
    steps_per_epoch = max(1, len(dataset) // global_batch if len(dataset) > global_batch else 1)
    total_steps = max(1, train.epochs * steps_per_epoch // train.accumulation_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, train.warmup_steps))

    start_epoch, global_step, best_val, best_epoch, history = 0, 0, -1.0, -1, []
    last_path = out / CHECKPOINT_LAST
    if resume and last_path.is_file():
        state = load_checkpoint(last_path)
        model.load_saved_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss_state"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        start_epoch, global_step = state["epoch"], state["global_step"]
        best_val, best_epoch, history = state["best_val"], state["best_epoch"], state["history"]
        if main:
            print(f"resuming {variant_name} from {last_path} after epoch {start_epoch}")
    if resume and last_path.is_file():
        _set_rng_state(rng[context.rank] if isinstance(rng, list) else rng)  # each rank resumes its own stream
    elif context.enabled:
        torch.manual_seed(train.seed + 1000 * context.rank)  # distinct dropout streams per rank
    forward_model = model
    if context.enabled:
        forward_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=False
        )

    use_amp = train.amp and device.type == "cuda"
    started = time.perf_counter()
    epoch_times: list[float] = []
    for epoch in range(start_epoch, train.epochs):
        epoch_start = time.perf_counter()
        if hasattr(loss_fn, "on_epoch_start"):
            loss_fn.on_epoch_start(epoch)
        model.train()
        sums: dict[str, float] = {}
        batches = train_batches(dataset, train.batch_size, epoch, train.num_workers, model.tokenize, context)
        bar = tqdm(batches, desc=f"{variant_name} epoch {epoch + 1}/{train.epochs}", disable=None if progress else True,
                   leave=False, mininterval=1.0)
        seen = 0
        for step, batch in enumerate(bar):
            batch = _to_device(batch, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                outputs = forward_model(batch["images"], batch["tokens"], **{k: v for k, v in batch.items() if k not in ("images", "tokens")})
                terms = loss_fn(outputs, batch)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"{variant_name}: loss became {loss.item()} at epoch {epoch + 1}, step {step} "
                    f"(terms: { {k: float(v.detach()) for k, v in terms.items()} }); the last good checkpoint is kept at "
                    f"{last_path}. Lower train.lr or set train.grad_clip, then run again with --resume"
                )
            (loss / train.accumulation_steps).backward()
            if (step + 1) % train.accumulation_steps == 0:
                if train.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], train.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                global_step += 1
            seen += batch["images"].shape[0]
            for key, value in {"loss": loss, **terms}.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            elapsed = time.perf_counter() - epoch_start
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}", samples_per_s=f"{seen / max(elapsed, 1e-9):.0f}")
            if tracker is not None and global_step % train.log_every == 0:
                tracker.log_metrics({f"train_{k}": float(v.detach()) for k, v in {"loss": loss, **terms}.items()},
                                    step=global_step)
        optimizer.zero_grad(set_to_none=True)
        epoch_seconds = time.perf_counter() - epoch_start
        epoch_times.append(epoch_seconds)
        steps = max(1, step + 1)
        record = {f"epoch_{k}": v / steps for k, v in sums.items()}
        if hasattr(loss_fn, "epoch_summary"):
            record.update(loss_fn.epoch_summary())
        rng_states = _gather_rng_states(context)
        if main:
            validation = evaluate_split(model, val_split, loader, params.eval.batch_size, device)["metrics"]
            record.update({f"val_{k}": v for k, v in validation.items()})
            record.update({"epoch": epoch + 1, "epoch_seconds": epoch_seconds, "lr": scheduler.get_last_lr()[0]})
            history.append(record)
            if tracker is not None:
                tracker.log_metrics(record, step=epoch + 1)
            if validation["mR"] > best_val:
                best_val, best_epoch = validation["mR"], epoch + 1
                save_checkpoint(out / CHECKPOINT_BEST, model=model, variant=variant, params=params, epoch=epoch + 1,
                                loss_fn=loss_fn)
            save_checkpoint(
                last_path, model=model, variant=variant, params=params, epoch=epoch + 1, loss_fn=loss_fn,
                optimizer=optimizer, scheduler=scheduler, rng=rng_states, global_step=global_step,
                best_val=best_val, best_epoch=best_epoch, history=history,
            )
            print(f"{variant_name} epoch {epoch + 1}/{train.epochs}: loss {record.get('epoch_loss', float('nan')):.4f} "
                  f"val mR {validation['mR']:.2f} ({epoch_seconds:.1f}s)", flush=True)
        barrier(context)

    if main and hasattr(getattr(loss_fn, "loss", loss_fn), "export_eliminated"):
        getattr(loss_fn, "loss", loss_fn).export_eliminated(out / "eliminated.json")  # EBA: which pairs were dropped
    if not main:
        return TrainResult(variant_name, None, train.epochs, best_epoch, None, time.perf_counter() - started,
                           float(np.mean(epoch_times)) if epoch_times else 0.0, _peak_memory_mb(device), "", 0,
                           total_params, trainable_params, [])
    best = out / CHECKPOINT_BEST
    return TrainResult(
        variant=variant_name,
        run_id=getattr(tracker, "run_id", None),
        epochs=train.epochs,
        best_epoch=best_epoch,
        best_val_mR=best_val,
        train_seconds=time.perf_counter() - started,
        epoch_seconds=float(np.mean(epoch_times)) if epoch_times else 0.0,
        peak_memory_mb=_peak_memory_mb(device),
        checkpoint=str(best),
        checkpoint_bytes=best.stat().st_size,
        total_params=total_params,
        trainable_params=trainable_params,
        history=history,
    )


def write_train_summary(result: TrainResult, path: Path) -> None:
    summary = {k: v for k, v in asdict(result).items() if k != "history"}
    summary["final"] = result.history[-1] if result.history else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=float) + "\n")
