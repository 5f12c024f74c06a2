"""Random-number state of a training run: seeding, saving and restoring every stream.

A resumed run must see exactly the random draws an uninterrupted run would (dropout,
token dropout), so ``last.pt`` stores Python's, NumPy's and torch's (CPU and CUDA) states,
one per rank under data parallelism.
"""

from __future__ import annotations

import random
import resource
from typing import Any

import numpy as np
import torch

from rsitr.training.distributed import DistributedContext


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def gather_rng_states(context: DistributedContext) -> dict[str, Any] | list[dict[str, Any]]:
    """Every rank's RNG state (rank 0 saves them all, so each rank resumes its own stream)."""
    state = rng_state()
    if not context.enabled:
        return state
    import torch.distributed as dist

    states: list[Any] = [None] * context.world_size
    dist.all_gather_object(states, state)
    return states


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory allocated, or the process's peak resident set on the CPU (Linux: KiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
