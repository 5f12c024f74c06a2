"""Prefect cache policy of rsitr's steps: the step's fingerprint, only when its outputs exist.

Prefect's built-in policies hash task inputs and source; rsitr's steps take only a params
path and ``--set`` overrides, and what decides whether work can be skipped is the resolved
config, the data version and the code version, plus the presence of the output files
(``rsitr.app.core.step_records``). ``StepCache.compute_key`` returns that fingerprint when the step's
recorded outputs are current and ``None`` (no caching: run) otherwise, so a fresh clone
with Prefect results but no ``models/`` never skips work whose outputs it lacks.

Where the three cache layers meet (kept apart on purpose; not collapsed in issue 26):

* the **fingerprint** (``rsitr.app.core.fingerprint``: config + data version + code version) is the
  one key; it alone decides *whether* a step's result is current;
* ``models/<variant>/<step>.done.json`` (``rsitr.app.steps.run_step``) records that key beside
  the outputs, so ``rsitr train``/``evaluate`` outside Prefect, a DVC stage and a worker with a
  wiped Prefect database all skip the same work; it is the layer that decides;
* this policy hands the same key to Prefect, which then skips the task without running it and
  shows it *Cached* in the UI; it answers a key only when ``completed`` says the done record and
  outputs exist, so it can never skip what the done record would redo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext

from rsitr.app.core.step_records import completed, fingerprint
from rsitr.config import load_params
from rsitr.errors import RsitrError


@dataclass
class StepCache(CachePolicy):
    step: str = "train"

    def compute_key(self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any],
                    **kwargs: Any) -> str | None:
        try:
            params = load_params(inputs["params_path"], inputs.get("overrides") or [])
            variant = inputs.get("variant")
            key = fingerprint(params, self.step, variant)
            return f"rsitr-{self.step}-{variant or 'all'}-{key}" if completed(params, self.step, variant, key) else None
        except (RsitrError, OSError):
            return None  # no data yet, unreadable params: let the task run and report it
