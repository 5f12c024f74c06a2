"""Prefect (3.x) flows of rsitr: the benchmark, one variant, and promotion.

The tasks are thin wrappers over the SAME library functions as the DVC stages
(``rsitr.data.stages.run_keywords``, ``rsitr.training.stages.run_train`` /
``run_evaluate``, ``rsitr.tracking.registry``, ``rsitr.tracking.leaderboard``): no second
implementation. Every task receives ``params_path`` and the ``--set``-style ``overrides``
(plain strings, so inputs hash and serialise) and loads the typed params itself.

* ``benchmark``: keywords -> per variant (train -> evaluate on every test set -> register)
  -> leaderboard. Variant chains fan out on a thread pool, at most ``concurrency`` at a
  time (default 1: one GPU, and training seeds global RNGs, so concurrent variants in
  one process are not bit-reproducible). A failing variant does not stop the others; the
  leaderboard is written from what finished and the flow then fails naming the variants.
* ``variant``: the same chain for one variant, then the leaderboard.
* ``promote``: the promotion gate of one variant (``rsitr.tracking.registry.promote``).

MLflow run ids travel explicitly from task to task (the train task returns its run id;
evaluate checks ``models/<variant>/run.json`` names that run; register receives it):
MLflow's active run is per thread, so nothing relies on it. Tasks retry only transient
failures (tracking server unreachable, connection errors, a locked database, CUDA out of
memory); a config or data error fails at once. Results are persisted
(``PREFECT_LOCAL_STORAGE_PATH``, default ``~/.prefect/storage``) and cached per flow run,
so retrying a failed flow run from the UI skips the tasks that already completed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from prefect import flow, task
from prefect.cache_policies import INPUTS, NO_CACHE, RUN_ID, TASK_SOURCE
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

MAX_CONCURRENCY = 8
RETRIES = 2
RETRY_DELAYS = [10, 60]
# Within one flow run (e.g. a retry from the UI) a completed task is reused from its
# persisted result; a new flow run recomputes everything.
CACHE = INPUTS + TASK_SOURCE + RUN_ID
RECALLS = ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR")
_NOT_TRANSIENT_OS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying could help: network/tracking hiccups yes, bad config or data no."""
    from rsitr.errors import RsitrError, TrackingError

    if isinstance(exc, TrackingError):
        return True
    if isinstance(exc, RsitrError):
        return False
    if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError: another job held the GPU
        return True
    if isinstance(exc, OSError):  # ConnectionError and TimeoutError are OSErrors
        return not isinstance(exc, _NOT_TRANSIENT_OS)
    text = str(exc).lower()
    return "database is locked" in text or "temporarily unavailable" in text or "503" in text


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classification is the point
        return is_transient(exc)
    return False


def effective_overrides(overrides: Sequence[str] | None, datasets: Sequence[str] | None) -> list[str]:
    """``--set`` strings, plus ``datasets`` as ``train.datasets`` and ``eval.test_sets``."""
    result = list(overrides or [])
    if datasets:
        names = "[" + ",".join(datasets) + "]"
        result += [f"train.datasets={names}", f"eval.test_sets={names}"]
    return result


def _params(params_path: str, overrides: Sequence[str]):
    from rsitr.config import load_params

    return load_params(params_path, list(overrides))


_TASK_OPTIONS: dict[str, Any] = dict(
    retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=_retry_transient,
    persist_result=True, cache_policy=CACHE,
)


@task(name="keywords", **_TASK_OPTIONS)
def keywords_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    from rsitr.data.stages import run_keywords

    return run_keywords(_params(params_path, overrides))


def torchrun_command(params_path: str, overrides: Sequence[str], variant: str, nproc_per_node: int) -> list[str]:
    """The torchrun launch of ``python -m rsitr.train`` for ``nproc_per_node`` processes on this node."""
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc_per_node),
               "-m", "rsitr.train", "--params", params_path, "--variant", variant]
    for override in overrides:
        command += ["--set", override]
    return command


@task(name="train", task_run_name="train-{variant}", **_TASK_OPTIONS)
def train_task(params_path: str, overrides: list[str], variant: str, nproc_per_node: int = 1) -> str:
    """Train ``variant`` (one new MLflow run); returns the run id.

    ``nproc_per_node`` > 1 launches the same training data-parallel with torchrun on this
    worker's GPUs (``CUDA_VISIBLE_DEVICES`` of the deployment's job variables).
    """
    import subprocess

    from rsitr.tracking.registry import variant_run_id
    from rsitr.training.stages import run_train

    params = _params(params_path, overrides)
    if nproc_per_node > 1:
        subprocess.run(torchrun_command(params_path, overrides, variant, nproc_per_node), check=True)
    else:
        run_train(params, variant, progress=False)
    return variant_run_id(params, variant)


@task(name="evaluate", task_run_name="evaluate-{variant}", **_TASK_OPTIONS)
def evaluate_task(params_path: str, overrides: list[str], variant: str, run_id: str) -> dict[str, Any]:
    """Evaluate on every test set and language into run ``run_id``; returns the recalls."""
    from rsitr.errors import RsitrError
    from rsitr.tracking.registry import variant_run_id
    from rsitr.training.stages import run_evaluate

    params = _params(params_path, overrides)
    recorded = variant_run_id(params, variant)
    if recorded != run_id:
        raise RsitrError(f"models/{variant}/run.json names run {recorded}, but the train task created {run_id}; "
                         "another job trained this variant in the same models folder")
    results = run_evaluate(params, variant)
    return {"run_id": run_id, "metrics": {name: {k: r[k] for k in RECALLS} for name, r in results.items()}}


@task(name="register", task_run_name="register-{variant}", **_TASK_OPTIONS)
def register_task(params_path: str, overrides: list[str], variant: str, run_id: str) -> dict[str, Any]:
    from rsitr.tracking.registry import register_variant

    return asdict(register_variant(_params(params_path, overrides), variant, run_id=run_id))


@task(name="leaderboard", **{**_TASK_OPTIONS, "cache_policy": NO_CACHE})
def leaderboard_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    from rsitr.tracking.leaderboard import write_leaderboard

    files = write_leaderboard(_params(params_path, overrides))
    return {"markdown": str(files.markdown), "csv": str(files.csv), "models": list(files.models),
            "reported_rows": files.reported_rows}


@task(name="promote", task_run_name="promote-{variant}", **{**_TASK_OPTIONS, "cache_policy": NO_CACHE})
def promote_task(params_path: str, overrides: list[str], variant: str, force: bool, reason: str) -> dict[str, Any]:
    from rsitr.tracking.registry import promote as promote_variant

    return promote_variant(_params(params_path, overrides), variant, force=force, reason=reason).to_dict()


def check_concurrency(concurrency: int) -> None:
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}")


def _submit_chain(params_path: str, overrides: list[str], variant: str, register: bool,
                  nproc_per_node: int = 1) -> dict[str, PrefectFuture]:
    train = train_task.submit(params_path, overrides, variant, nproc_per_node)
    evaluate = evaluate_task.submit(params_path, overrides, variant, run_id=train)
    chain = {"train": train, "evaluate": evaluate}
    if register:
        chain["register"] = register_task.submit(params_path, overrides, variant, run_id=train, wait_for=[evaluate])
    return chain


def _outcome(chain: dict[str, PrefectFuture]) -> dict[str, Any]:
    outcome: dict[str, Any] = {}
    for step, future in chain.items():
        future.wait()
        if not future.state.is_completed():
            outcome["failed"] = f"{step}: {future.state.message or future.state.name}"
            return outcome
        outcome[step] = future.result()
    return outcome


def run_variants(params_path: str, overrides: list[str], variants: Sequence[str], *, concurrency: int,
                 register: bool, nproc_per_node: int = 1) -> dict[str, dict[str, Any]]:
    """Submit one chain per variant, at most ``concurrency`` in flight; returns each variant's outcome."""
    check_concurrency(concurrency)
    in_flight: deque[tuple[str, dict[str, PrefectFuture]]] = deque()
    outcomes: dict[str, dict[str, Any]] = {}
    for variant in variants:
        while len(in_flight) >= concurrency:
            done, chain = in_flight.popleft()
            outcomes[done] = _outcome(chain)
        in_flight.append((variant, _submit_chain(params_path, overrides, variant, register, nproc_per_node)))
    while in_flight:
        done, chain = in_flight.popleft()
        outcomes[done] = _outcome(chain)
    return outcomes


def _finish(outcomes: dict[str, dict[str, Any]], leaderboard: dict[str, Any], started: float) -> dict[str, Any]:
    failed = {v: o["failed"] for v, o in outcomes.items() if "failed" in o}
    if failed:
        raise RuntimeError("variants failed: " + "; ".join(f"{v} ({why})" for v, why in failed.items())
                           + f". Leaderboard written from the rest: {leaderboard['markdown']}")
    return {"variants": outcomes, "leaderboard": leaderboard, "seconds": round(time.perf_counter() - started, 1)}


@flow(name="benchmark", task_runner=ThreadPoolTaskRunner(max_workers=MAX_CONCURRENCY), persist_result=True,
      log_prints=True)
def benchmark(
    variants: list[str] | None = None,
    datasets: list[str] | None = None,
    overrides: list[str] | None = None,
    params_path: str = "params.yaml",
    concurrency: int = 1,
    register_models: bool = True,
    nproc_per_node: int = 1,
) -> dict[str, Any]:
    """keywords -> train / evaluate / register every selected variant -> leaderboard.

    ``variants``: names from params (default: all). ``datasets``: restrict training and
    test sets to these datasets. ``overrides``: ``section.key=value`` strings as ``--set``.
    ``nproc_per_node``: training processes (GPUs) per variant, launched with torchrun.
    """
    started = time.perf_counter()
    overrides = effective_overrides(overrides, datasets)
    params = _params(params_path, overrides)  # a bad key, name or setting fails here, before any work
    check_concurrency(concurrency)
    selected = list(variants or params.variants)
    for name in selected:
        params.variant(name)
    keywords_task(params_path, overrides)
    outcomes = run_variants(params_path, overrides, selected, concurrency=concurrency, register=register_models,
                            nproc_per_node=nproc_per_node)
    leaderboard = leaderboard_task(params_path, overrides)
    print(f"benchmark: {len(selected)} variants; leaderboard {leaderboard['markdown']}")
    return _finish(outcomes, leaderboard, started)


@flow(name="variant", task_runner=ThreadPoolTaskRunner(max_workers=2), persist_result=True, log_prints=True)
def one_variant(
    variant: str,
    datasets: list[str] | None = None,
    overrides: list[str] | None = None,
    params_path: str = "params.yaml",
    register_models: bool = True,
    nproc_per_node: int = 1,
) -> dict[str, Any]:
    """One variant: keywords -> train (torchrun when ``nproc_per_node`` > 1) -> evaluate -> register -> leaderboard."""
    started = time.perf_counter()
    overrides = effective_overrides(overrides, datasets)
    _params(params_path, overrides).variant(variant)
    keywords_task(params_path, overrides)
    outcomes = run_variants(params_path, overrides, [variant], concurrency=1, register=register_models,
                            nproc_per_node=nproc_per_node)
    return _finish(outcomes, leaderboard_task(params_path, overrides), started)


@flow(name="promote", persist_result=True, log_prints=True)
def promote_champion(
    variant: str,
    force: bool = False,
    reason: str = "",
    overrides: list[str] | None = None,
    params_path: str = "params.yaml",
) -> dict[str, Any]:
    """Move ``champion`` to the variant's ``challenger`` if it passes the gate (a refusal is not a failure)."""
    decision = promote_task(params_path, list(overrides or []), variant, force, reason)
    print(decision["message"])
    return decision
