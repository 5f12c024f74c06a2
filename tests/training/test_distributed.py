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

from toy_data import RUN_WITH_TEST_MODELS, make_toy_benchmark, toy_params_dict
from rsitr.models.trained import load_checkpoint
from rsitr.training.distributed import DistributedContext, shard_batch_indices

PER_RANK_BATCH = 8


def test_shards_concatenate_to_the_global_batches():
    order = list(range(37))
    shards = [shard_batch_indices(order, 4, DistributedContext(rank=r, world_size=3), drop_last=True) for r in range(3)]
    assert [len(s) for s in shards] == [12, 12, 12]
    for k in range(3):  # global batch k is the ranks' batch k, in rank order
        assert sum((s[k * 4:(k + 1) * 4] for s in shards), []) == order[k * 12:(k + 1) * 12]


def _write_params(tmp_path: Path, name: str, variant_entry: dict, batch_size: int, data: Path) -> Path:
    # SGD: the update is linear in the gradient (Adam's first step divides by |g| and turns
    # float-order noise in near-zero gradients into full-size steps)
    raw = toy_params_dict(data, epochs=1, batch_size=batch_size, warmup_share=0.0, lr=0.5, grad_clip=0.0,
                          optimizer="sgd")
    raw["variants"]["under_test"] = variant_entry
    raw["paths"]["models"] = str(tmp_path / name / "models")
    params_path = tmp_path / name / "params.yaml"
    params_path.parent.mkdir(parents=True)
    params_path.write_text(yaml.safe_dump(raw))
    return params_path


def _last_checkpoint(params_path: Path) -> dict:
    return load_checkpoint(params_path.parent / "models" / "under_test" / "staging" / "last.pt")


def _run_both(tmp_path: Path, variant_entry: dict, data: Path) -> tuple[dict, dict]:
    """Two gloo ranks on halves of the global batch (torchrun), and meanwhile ``python -m rsitr.train``'s
    ``main`` in this process on the whole global batch (one intra-op thread, as each rank has)."""
    import torch

    from rsitr.train import main

    single = _write_params(tmp_path, "single", variant_entry, 2 * PER_RANK_BATCH, data)
    double = _write_params(tmp_path, "double", variant_entry, PER_RANK_BATCH, data)
    torchrun = Path(sys.executable).with_name("torchrun")
    # ``python -m rsitr.train`` with the tests' micro model registered in every rank
    command = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 1000),
               str(RUN_WITH_TEST_MODELS), "rsitr.train", "--params", str(double), "--variant", "under_test",
               "--no-track"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    threads = torch.get_num_threads()
    with (tmp_path / "double.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            torch.set_num_threads(1)
            assert main(["--params", str(single), "--variant", "under_test", "--no-track"]) == 0
            returncode = process.wait(timeout=600)
        finally:
            torch.set_num_threads(threads)
            if process.poll() is None:
                process.kill()
                process.wait()
    assert returncode == 0, (tmp_path / "double.log").read_text()[-6000:]
    return _last_checkpoint(single), _last_checkpoint(double)


@pytest.mark.parametrize(
    "variant_entry",
    [
        {"method": "finetune"},
        # dropout off: random regularisers cannot match across a different number of processes
        # (shared_dims: the adapter's bottleneck must fit the micro model's 32-wide towers)
        {"method": "petl", "options": {"dropout": 0.0, "token_dropout": 0.0, "shared_dims": 16}},
    ],
    ids=["finetune", "petl"],
)
def test_two_gloo_ranks_equal_one_process_on_the_concatenated_batch(tmp_path, variant_entry):
    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("torchrun not installed beside this Python")
    # exactly one global batch of training pairs: 4 train images x 5 captions = 20 -> one step of 16
    data = make_toy_benchmark(tmp_path / "data", n_images=6)
    single, double = _run_both(tmp_path, variant_entry, data)
    assert single["global_step"] == double["global_step"] == 1
    loss_single, loss_double = single["history"][0]["epoch_loss"], double["history"][0]["epoch_loss"]
    assert loss_double == pytest.approx(loss_single, rel=1e-5)
    for key, weight in single["model"].items():
        assert torch.allclose(weight, double["model"][key], atol=1e-6, rtol=1e-4), key
    initial = _initial_weights(tmp_path / "single" / "params.yaml")
    changed = [key for key, weight in single["model"].items() if not torch.equal(weight, initial[key])]
    assert changed, "the step moved no weight: nothing was compared"


def _initial_weights(params_path: Path) -> dict[str, torch.Tensor]:
    """The weights a run of ``under_test`` starts from (the trainer seeds, then builds the model)."""
    from rsitr.config import load_params
    from rsitr.models import build_model
    from rsitr.training.rng import seed_everything

    params = load_params(params_path)
    seed_everything(params.variant("under_test").train.seed)
    return build_model(params, "under_test").saved_state_dict()


def test_ebaker_two_ranks_eliminate_the_same_rows_as_one_process(tmp_path):
    """EBA under torchrun: the similarity bank holds the global batch's positives on every
    rank, so the threshold and the eliminated training pairs equal a single process's."""
    import json

    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("torchrun not installed beside this Python")
    data = make_toy_benchmark(tmp_path / "data", n_images=12)  # 8 train images x 5 captions: 2 global batches / epoch
    entry = {
        "method": "ebaker",
        # a small step: epoch 2's positives stay near epoch 1's median, so some (17 of 40) captions are eliminated
        "train": {"epochs": 2, "lr": 0.02},
        # KER's masked-LM term is per rank (a local mean), so it is off for an exact comparison
        "options": {"ker": False, "drop_epoch": 1, "drop_ratio": 0.5},
    }
    eliminated = {}
    for name, state in zip(("single", "double"), _run_both(tmp_path, entry, data)):
        assert state["global_step"] == 4
        eliminated[name] = json.loads(
            (tmp_path / name / "models" / "under_test" / "eliminated.json").read_text()
        )["eliminated_caption_ids"]
    assert eliminated["single"], "the test needs some eliminations"
    assert eliminated["double"] == eliminated["single"]
