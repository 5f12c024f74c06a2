"""Shared pytest fixtures.

Tests that read the real annotation files in ``../shared/datasets`` use the
``shared_datasets`` fixture, which skips cleanly when that folder is absent
(a user's fresh clone has no ``../shared``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import rsitr.methods  # noqa: F401 - registers the built-in methods (as rsitr.load_params does)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("RSITR_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """Path of ``../shared/datasets``; skips the test when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real annotation files not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="module")
def single_torch_thread():
    """Tiny tensors: one intra-op thread avoids oversubscription on a shared 2-core CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- toy data
from toy_data import make_toy_benchmark, register_test_models  # noqa: E402  (tests/ is on sys.path via conftest)

register_test_models()  # the toy projects' micro architecture (toy_data.TEST_ARCH), in every test process


def _one_torch_thread() -> None:
    """The tests' models and batches are tiny: one intra-op thread is faster than torch's OpenMP threads, and
    several times faster on a shared 2-core CPU where spinning threads wait for each other. (Not through
    ``OMP_NUM_THREADS``, which FAISS's own OpenMP runtime would read too.) Training processes that tests start
    get ``OMP_NUM_THREADS=1`` in their environment."""
    import torch

    torch.set_num_threads(1)


_one_torch_thread()


@pytest.fixture(scope="session")
def toy_benchmark(tmp_path_factory) -> Path:
    return make_toy_benchmark(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def small_toy_benchmark(tmp_path_factory) -> Path:
    """18 images (12 train, 3 val, 3 test): 60 training captions, 3 steps an epoch at batch 16."""
    return make_toy_benchmark(tmp_path_factory.mktemp("toy_small"), n_images=18)
