"""torchrun data parallelism: 2 CPU ranks (gloo) take the same step as one process on the
concatenated batch, because contrastive losses see the global batch (gathered features)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from toy_data import make_toy_benchmark, toy_params_dict
from rsitr.models.trained import load_checkpoint
from rsitr.training.distributed import DistributedContext, shard_batch_indices

PER_RANK_BATCH = 8


def test_shards_concatenate_to_the_global_batches():
    order = list(range(37))
    shards = [shard_batch_indices(order, 4, DistributedContext(rank=r, world_size=3), drop_last=True) for r in range(3)]
    assert [len(s) for s in shards] == [12, 12, 12]
    for k in range(3):  # global batch k is the ranks' batch k, in rank order
        assert sum((s[k * 4:(k + 1) * 4] for s in shards), []) == order[k * 12:(k + 1) * 12]


def _run(tmp_path: Path, name: str, variant_entry: dict, nproc: int, batch_size: int, data: Path) -> dict:  # noqa: PLR0913
    # SGD: the update is linear in the gradient (Adam's first step divides by |g| and turns
    # float-order noise in near-zero gradients into full-size steps)
    raw = toy_params_dict(data, epochs=1, batch_size=batch_size, warmup_steps=1, lr=0.5, grad_clip=0.0,
                          optimizer="sgd")
    raw["variants"]["under_test"] = variant_entry
    raw["paths"]["models"] = str(tmp_path / name / "models")
    params_path = tmp_path / name / "params.yaml"
    params_path.parent.mkdir(parents=True)
    params_path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    arguments = ["-m", "rsitr.train", "--params", str(params_path), "--variant", "under_test", "--no-track"]
    if nproc > 1:
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [str(torchrun), "--nproc_per_node", str(nproc), "--master_port", str(29500 + os.getpid() % 1000),
                   *arguments]
    else:
        command = [sys.executable, *arguments]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return load_checkpoint(tmp_path / name / "models" / "under_test" / "staging" / "last.pt")


@pytest.mark.parametrize(
    "variant_entry",
    [
        {"method": "finetune"},
        # dropout off: random regularisers cannot match across a different number of processes
        {"method": "petl", "options": {"dropout": 0.0, "token_dropout": 0.0}},
    ],
    ids=["finetune", "petl"],
)
def test_two_gloo_ranks_equal_one_process_on_the_concatenated_batch(tmp_path, variant_entry):
    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("torchrun not installed beside this Python")
    # exactly one global batch of training pairs: 4 train images x 5 captions = 20 -> one step of 16
    data = make_toy_benchmark(tmp_path / "data", n_images=6)
    single = _run(tmp_path, "single", variant_entry, nproc=1, batch_size=2 * PER_RANK_BATCH, data=data)
    double = _run(tmp_path, "double", variant_entry, nproc=2, batch_size=PER_RANK_BATCH, data=data)
    assert single["global_step"] == double["global_step"] == 1
    loss_single, loss_double = single["history"][0]["epoch_loss"], double["history"][0]["epoch_loss"]
    assert loss_double == pytest.approx(loss_single, rel=1e-5)
    changed = 0
    for key, weight in single["model"].items():
        assert torch.allclose(weight, double["model"][key], atol=1e-6, rtol=1e-4), key
        changed += 1
    assert changed > 0


def test_ebaker_two_ranks_eliminate_the_same_rows_as_one_process(tmp_path):
    """EBA under torchrun: the similarity bank holds the global batch's positives on every
    rank, so the threshold and the eliminated training pairs equal a single process's."""
    import json

    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("torchrun not installed beside this Python")
    data = make_toy_benchmark(tmp_path / "data", n_images=12)  # 8 train images x 5 captions: 2 global batches / epoch
    entry = {
        "method": "ebaker",
        "train": {"epochs": 2},
        # KER's masked-LM term is per rank (a local mean), so it is off for an exact comparison
        "options": {"ker": False, "drop_epoch": 1, "drop_ratio": 0.5},
    }
    eliminated = {}
    for name, nproc, batch in (("single", 1, 2 * PER_RANK_BATCH), ("double", 2, PER_RANK_BATCH)):
        state = _run(tmp_path, name, entry, nproc=nproc, batch_size=batch, data=data)
        assert state["global_step"] == 4
        eliminated[name] = json.loads(
            (tmp_path / name / "models" / "under_test" / "eliminated.json").read_text()
        )["eliminated_caption_ids"]
    assert eliminated["single"], "the test needs some eliminations"
    assert eliminated["double"] == eliminated["single"]
