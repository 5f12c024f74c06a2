"""Data-parallel training on PyTorch's own engine (torchrun + DistributedDataParallel).

Contrastive losses need every anchor to see the negatives of the whole global batch, so
per-sample features are all-gathered across ranks with the gradient flowing to the local
slice, as open_clip's ``gather_features`` does. Each rank then evaluates the loss of the
global batch; DDP averages gradients over ranks, so the global-batch terms have their
gradient scaled by the world size (their value is unchanged) to make one step on N ranks
equal one step on the concatenated batch in a single process. Per-sample terms a loss
declares local (EBAKER's masked-language-model term) stay on the local batch and are
averaged by DDP like any mean.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from rsitr.losses.base import TrainerLoss


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group torchrun describes in the environment (NCCL on GPUs, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size)


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        dist.barrier()


def all_gather_with_grad(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """``[B, ...]`` per rank -> ``[N*B, ...]`` in rank order; only the local slice carries gradient."""
    if not context.enabled:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(context.world_size)]
    dist.all_gather(gathered, tensor.detach().contiguous())
    gathered[context.rank] = tensor
    return torch.cat(gathered, dim=0)


def scale_gradient(value: torch.Tensor, factor: float) -> torch.Tensor:
    """Same value, gradient multiplied by ``factor``."""
    return value * factor - value.detach() * (factor - 1.0)


class GlobalBatchLoss(TrainerLoss):
    """Wrap a loss so that it sees the global batch across ranks.

    Gathers ``loss.gather_keys`` from the outputs (default: every tensor whose first dim is
    the batch size) and ``image_ids``/``caption_ids`` from the batch; terms named in
    ``loss.local_terms`` are left as computed on local tensors. Shared, non-per-sample
    outputs (the learnable temperature) see the whole global batch on every rank, so their
    gradient is divided by the world size to cancel the global terms' scaling.
    """

    def __init__(self, loss: TrainerLoss, context: DistributedContext):
        super().__init__()
        self.loss = loss
        self.context = context

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        if not self.context.enabled:
            return self.loss(outputs, batch)
        size = batch["images"].shape[0]
        world = float(self.context.world_size)
        keys = self.loss.gather_keys
        gathered_outputs = dict(outputs)
        for key, value in outputs.items():
            if not isinstance(value, torch.Tensor):
                continue
            per_sample = value.ndim >= 1 and value.shape[0] == size
            if (key in keys) if keys is not None else per_sample:
                gathered_outputs[key] = all_gather_with_grad(value, self.context)
            elif not per_sample and value.requires_grad:
                # shared tensors (the temperature) get the global-batch gradient on EVERY rank;
                # undo the world-size scaling below so DDP's average leaves it unchanged
                gathered_outputs[key] = scale_gradient(value, 1.0 / world)
        gathered_batch = dict(batch)
        for key in ("image_ids", "caption_ids"):
            if key in batch:
                gathered_batch[key] = all_gather_with_grad(batch[key], self.context)
        local_terms = set(self.loss.local_terms)
        terms = self.loss(gathered_outputs, gathered_batch)
        return {
            name: value if name in local_terms else scale_gradient(value, world)
            for name, value in terms.items()
        }

    # the trainer calls these on the loss it holds; forward them to the wrapped loss
    def on_epoch_start(self, epoch: int) -> None:
        self.loss.on_epoch_start(epoch)

    def epoch_summary(self) -> dict[str, float]:
        return self.loss.epoch_summary()

    def write_artifacts(self, folder: Path) -> list[Path]:
        return self.loss.write_artifacts(folder)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.loss.state_dict(*args, **kwargs)

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> Any:
        return self.loss.load_state_dict(state, strict=strict)


def shard_batch_indices(order: list[int], batch_size: int, context: DistributedContext, drop_last: bool) -> list[int]:
    """This rank's items of an epoch order: global batch k is ``order[k*N*B:(k+1)*N*B]`` and rank r
    takes its r-th slice of B, so the ranks' batches concatenate to the single-process batch."""
    global_batch = batch_size * context.world_size
    count = (len(order) // global_batch) * global_batch if drop_last else len(order)
    mine: list[int] = []
    for start in range(0, count, global_batch):
        chunk = order[start : start + global_batch]
        mine.extend(chunk[context.rank * batch_size : (context.rank + 1) * batch_size])
    return mine
