"""Run ``python -m MODULE ARGS...`` in a child process with the test-only model configs registered.

    python tests/run_with_test_models.py rsitr.cli train --params p.yaml --variant finetune
    torchrun --nproc_per_node 2 tests/run_with_test_models.py rsitr.train --params p.yaml ...

Tests that start a real training process use it so the child knows ``toy_data.TEST_ARCH``
(``tests/model_configs``); everything else is the module's own ``__main__``.

``RSITR_TEST_HOLD_AFTER=EPOCH:STEP`` (1-based) makes training stop after that optimizer step,
print ``holding after epoch EPOCH step STEP`` and wait, so a test can kill the process at a known
point in the middle of an epoch instead of racing a fast epoch.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != HERE]  # tests/ is no package root


def _register() -> None:
    import open_clip

    open_clip.add_model_config(HERE / "model_configs")


def _hold_after(epoch_at: int, step_at: int) -> None:
    from rsitr.training import trainer

    original = trainer._train_step

    def step_then_hold(session, state, epoch, step, batch):
        values = original(session, state, epoch, step, batch)
        if (epoch + 1, step + 1) == (epoch_at, step_at):
            print(f"holding after epoch {epoch_at} step {step_at}", flush=True)
            time.sleep(3600)
        return values

    trainer._train_step = step_then_hold


if __name__ == "__main__":
    _register()
    if os.environ.get("RSITR_TEST_HOLD_AFTER"):
        _hold_after(*(int(n) for n in os.environ["RSITR_TEST_HOLD_AFTER"].split(":")))
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
