"""Prefect (3.x) flows of rsitr: the model work, from the versioned data to the leaderboard.

DVC owns the data (``dvc repro``: synth -> ingest -> dedup -> split); these flows own the
model work and call the library directly:

* ``benchmark``: check the data is current -> keywords -> per variant (train -> evaluate ->
  coarse-to-fine when the variant sets ``c2f: true`` -> register) -> leaderboard.
* ``variant``: the same chain for one variant, then the leaderboard.
* ``promote``: the promotion gate of one variant.

Re-runs are cheap and exact: every step is keyed on its fingerprint (resolved config, data
version, code version; ``rsitr.app.core.step_records``) through the ``StepCache`` policy, and a cache
hit also needs the step's output files, so a second ``make run`` trains nothing while a
``--set`` of one variant's ``train.epochs`` retrains exactly that variant.

On a GPU worker: training takes a slot of the global concurrency limit ``rsitr-gpu-<id>``
(one training at a time per GPU, created with limit 1 when missing), a retried train task
resumes from ``last.pt`` and the same MLflow run, and torchrun's output is forwarded to the
Prefect logs line by line. Tasks retry only transient failures (tracking server hiccups,
a locked database, CUDA out of memory); a config or data error fails at once.
"""

from __future__ import annotations

import logging

import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.logging import get_logger
from prefect.concurrency.sync import concurrency
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner

from rsitr.app.steps.c2f import run_c2f_evaluate, run_c2f_train
from rsitr.app.core.caching import StepCache
from rsitr.app.core.data_state import check_data_current
from rsitr.app.steps.evaluation import RECALLS, run_evaluate
from rsitr.app.steps.keywords import run_keywords
from rsitr.app.steps.leaderboard import run_leaderboard
from rsitr.app.steps.pretrain import pretrain_step, with_foundation
from rsitr.app.steps.registry import register_variant
from rsitr.app.core.runs import read_run_record
from rsitr.app.core.step_records import run_step
from rsitr.app.steps.training import run_train
from rsitr.config import RsitrParams, load_params
from rsitr.errors import ConfigError, RsitrError, TrackingError
from rsitr.tracking.mlflow_tracking import git_commit
from rsitr.tracking.registry import promote

logger = logging.getLogger(__name__)

MAX_CONCURRENCY = 8
RETRIES = 2
RETRY_DELAYS = [10, 60]
GPU_LIMIT_PREFIX = "rsitr-gpu"
_NOT_TRANSIENT_OS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying could help: network/tracking hiccups yes, bad config or data no."""
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


def _params(params_path: str, overrides: Sequence[str]) -> RsitrParams:
    return load_params(params_path, list(overrides))


def _options(step: str) -> dict[str, Any]:
    return dict(retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=_retry_transient,
                persist_result=True, cache_policy=StepCache(step=step))


# ----------------------------------------------------------------------------- tasks


@task(name="keywords", **_options("keywords"))
def keywords_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    params = _params(params_path, overrides)
    return run_step(params, "keywords", None, lambda: run_keywords(params))


@task(name="pretrain", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=_retry_transient,
      cache_policy=NO_CACHE)
def pretrain_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    """Continual pretraining into models/foundation/ (skipped when the published foundation is current)."""
    params = _params(params_path, overrides)
    with concurrency(gpu_limit_name(), occupy=1):
        return pretrain_step(params)


def pretrain_first(params_path: str, overrides: list[str]) -> list[str]:
    """With ``pretrain.enabled``: pretrain (or reuse the current foundation), then every step starts from it."""
    if not _params(params_path, overrides).pretrain.enabled:
        return overrides
    return with_foundation(overrides, pretrain_task(params_path, overrides)["checkpoint"])


def gpu_limit_name() -> str:
    """``rsitr-gpu-<first visible device>`` (``cpu`` without CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return f"{GPU_LIMIT_PREFIX}-{visible or 'cpu'}"


def torchrun_command(params_path: str, overrides: Sequence[str], variant: str, nproc_per_node: int) -> list[str]:
    """The torchrun launch of ``python -m rsitr.train`` for ``nproc_per_node`` processes on this node."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc_per_node),
               "-m", "rsitr.train", "--params", params_path, "--variant", variant, "--resume"]
    for override in overrides:
        command += ["--set", override]
    return command


LIBRARY_LOGGER = "rsitr"


def collect_library_logs() -> None:
    """rsitr's module loggers into the Prefect run logs, at INFO.

    Prefect's documented way is ``PREFECT_LOGGING_EXTRA_LOGGERS=rsitr``, read when Prefect sets up
    logging at import (``rsitr benchmark`` and the deployments set it). A flow called from Python
    without it gets the same wiring here: the handlers of Prefect's ``prefect.extra`` logger.
    """
    import logging

    library = logging.getLogger(LIBRARY_LOGGER)
    for handler in logging.getLogger("prefect.extra").handlers:
        if handler not in library.handlers:
            library.addHandler(handler)
    if library.level == logging.NOTSET or library.level > logging.INFO:
        library.setLevel(logging.INFO)


def publish_artifacts(outcomes: dict[str, dict[str, Any]], leaderboard: dict[str, Any]) -> None:
    """The leaderboard as a markdown artifact and each variant's MLflow run id as a table artifact."""
    create_markdown_artifact(key="rsitr-leaderboard", markdown=Path(leaderboard["markdown"]).read_text(encoding="utf-8"),
                             description="rsitr leaderboard (reports/leaderboard.md)")
    rows = [{"variant": v, "mlflow_run_id": (o.get("train") or {}).get("run_id") or "",
             "skipped": bool((o.get("train") or {}).get("skipped")), "failed": o.get("failed", "")}
            for v, o in outcomes.items()]
    create_table_artifact(key="rsitr-mlflow-runs", table=rows, description="the MLflow run of each variant's training")


def _run_logger() -> Any:
    """The Prefect run logger; rsitr's Prefect logger when called outside a flow or task run (``task.fn``)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("rsitr.flows")


def run_logged(command: list[str]) -> None:
    """Run ``command``, forwarding each output line to the Prefect run logger."""
    logger = _run_logger()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as process:
        assert process.stdout is not None
        for line in process.stdout:
            logger.info(line.rstrip())
    if process.returncode:
        raise RsitrError(f"torchrun exited with code {process.returncode}: {' '.join(command)}")


@task(name="train", task_run_name="train-{variant}", **_options("train"))
def train_task(params_path: str, overrides: list[str], variant: str, nproc_per_node: int = 1) -> dict[str, Any]:
    """Train ``variant`` (resuming an interrupted run of the same fingerprint); returns its run record."""
    params = _params(params_path, overrides)

    def work() -> dict[str, Any]:
        with concurrency(gpu_limit_name(), occupy=1):
            if nproc_per_node > 1:
                run_logged(torchrun_command(params_path, overrides, variant, nproc_per_node))
            else:
                run_train(params, variant, resume=True, progress=False)
        record = read_run_record(params, variant)
        return asdict(record) if record else {}

    return run_step(params, "train", variant, work)


def _recalls(results: dict[str, Any]) -> dict[str, Any]:
    """The protocol figures of each evaluated (test set, language), as a step result."""
    return {"metrics": {name: {k: r[k] for k in RECALLS} for name, r in results.items()}}


@task(name="evaluate", task_run_name="evaluate-{variant}", **_options("evaluate"))
def evaluate_task(params_path: str, overrides: list[str], variant: str) -> dict[str, Any]:
    params = _params(params_path, overrides)

    def work() -> dict[str, Any]:
        results = run_evaluate(params, variant)
        return _recalls(results)

    return run_step(params, "evaluate", variant, work)


@task(name="c2f", task_run_name="c2f-{variant}", **_options("c2f"))
def c2f_task(params_path: str, overrides: list[str], variant: str) -> dict[str, Any]:
    params = _params(params_path, overrides)

    def work() -> dict[str, Any]:
        run_c2f_train(params, variant)
        results = run_c2f_evaluate(params, variant)
        return _recalls(results)

    return run_step(params, "c2f", variant, work)


@task(name="register", task_run_name="register-{variant}", **_options("register"))
def register_task(params_path: str, overrides: list[str], variant: str) -> dict[str, Any]:
    params = _params(params_path, overrides)
    return run_step(params, "register", variant, lambda: asdict(register_variant(params, variant)))


@task(name="leaderboard", retries=RETRIES, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=_retry_transient,
      cache_policy=NO_CACHE)
def leaderboard_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    files = run_leaderboard(_params(params_path, overrides))
    return {"markdown": str(files.markdown), "csv": str(files.csv), "models": list(files.models),
            "reported_rows": files.reported_rows, "claims": str(files.claims), "claim_rows": files.claim_rows}


@task(name="promote", task_run_name="promote-{variant}", cache_policy=NO_CACHE)
def promote_task(params_path: str, overrides: list[str], variant: str, force: bool, reason: str) -> dict[str, Any]:
    return promote(_params(params_path, overrides), variant, force=force, reason=reason).to_dict()


# ----------------------------------------------------------------------------- chains


def check_concurrency(concurrency_: int) -> None:
    if not 1 <= concurrency_ <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency_}")


def _submit_chain(params_path: str, overrides: list[str], params: RsitrParams, variant: str, register: bool,
                  nproc_per_node: int, after: list[PrefectFuture]) -> dict[str, PrefectFuture]:
    train = train_task.submit(params_path, overrides, variant, nproc_per_node, wait_for=after)
    evaluate = evaluate_task.submit(params_path, overrides, variant, wait_for=[train])
    chain = {"train": train, "evaluate": evaluate}
    if params.c2f.enabled and params.variant(variant).c2f:
        chain["c2f"] = c2f_task.submit(params_path, overrides, variant, wait_for=[evaluate])
    if register:
        chain["register"] = register_task.submit(params_path, overrides, variant, wait_for=list(chain.values()))
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


def parents_first(params: RsitrParams, variants: Sequence[str]) -> list[str]:
    """``variants`` reordered so that a variant's ``train.init_from_variant`` parent comes before it."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        parent = params.variant(name).train.init_from_variant
        if parent in variants and parent not in ordered:
            visit(parent)
        if name not in ordered:
            ordered.append(name)

    for name in variants:
        visit(name)
    return ordered


def run_variants(params_path: str, overrides: list[str], variants: Sequence[str], *, concurrency: int,
                 register: bool, nproc_per_node: int = 1) -> dict[str, dict[str, Any]]:
    """Submit one chain per variant, at most ``concurrency`` in flight; returns each variant's outcome."""
    check_concurrency(concurrency)
    params = _params(params_path, overrides)
    in_flight: deque[tuple[str, dict[str, PrefectFuture]]] = deque()
    outcomes: dict[str, dict[str, Any]] = {}
    trains: dict[str, PrefectFuture] = {}
    for variant in parents_first(params, variants):
        while len(in_flight) >= concurrency:
            done, chain = in_flight.popleft()
            outcomes[done] = _outcome(chain)
        parent = params.variant(variant).train.init_from_variant
        after = [trains[parent]] if parent in trains else []  # English first, then Arabic
        chain = _submit_chain(params_path, overrides, params, variant, register, nproc_per_node, after)
        trains[variant] = chain["train"]
        in_flight.append((variant, chain))
    while in_flight:
        done, chain = in_flight.popleft()
        outcomes[done] = _outcome(chain)
    return outcomes


def ensure_gpu_limit() -> None:
    """Create this worker's GPU concurrency limit (1 slot) when it does not exist yet."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(gpu_limit_name())
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gpu_limit_name(), limit=1))


def check_pinned_commit() -> None:
    """A deployment pins its code (job variable ``RSITR_COMMIT``): refuse to run another commit."""
    pinned = os.environ.get("RSITR_COMMIT", "").strip()
    if not pinned:
        return
    running = git_commit(Path(__file__).resolve().parent)
    if not running.startswith(pinned) and not pinned.startswith(running):
        raise ConfigError(f"this deployment pins commit {pinned[:12]} but the worker's checkout runs "
                          f"{running[:12]}; run `git checkout {pinned[:12]}` in the worker's repository (RSITR_HOME) "
                          "or redeploy with RSITR_COMMIT=$(git rev-parse HEAD)")


def _prepare(params_path: str, overrides: list[str], variants: Sequence[str] | None, check_data: bool) -> list[str]:
    """Validate params and variant names, check the code and the data; the variants to run."""
    check_pinned_commit()
    params = _params(params_path, overrides)  # a bad key, name or setting fails here, before any work
    selected = list(variants or [v.name for v in params.variants.values() if v.benchmark == "default"])
    for name in selected:
        params.variant(name)
    if check_data:
        check_data_current(Path(params_path).resolve().parent)  # the DVC project the params file belongs to
    ensure_gpu_limit()
    return selected


def _finish(outcomes: dict[str, dict[str, Any]], leaderboard: dict[str, Any], started: float) -> dict[str, Any]:
    failed = {v: o["failed"] for v, o in outcomes.items() if "failed" in o}
    if failed:
        raise RuntimeError("variants failed: " + "; ".join(f"{v} ({why})" for v, why in failed.items())
                           + f". Leaderboard written from the rest: {leaderboard['markdown']}")
    return {"variants": outcomes, "leaderboard": leaderboard, "seconds": round(time.perf_counter() - started, 1)}


# ----------------------------------------------------------------------------- flows


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
    check_data: bool = True,
) -> dict[str, Any]:
    """keywords -> train / evaluate / c2f / register every selected variant -> leaderboard.

    ``variants``: names from params (default: those with ``benchmark: default``). ``datasets``: restrict training and
    test sets to these datasets. ``overrides``: ``section.key=value`` strings as ``--set``.
    ``nproc_per_node``: training processes (GPUs) per variant, launched with torchrun.
    ``check_data``: refuse to start when ``dvc status`` says the data stages are stale.
    """
    collect_library_logs()
    started = time.perf_counter()
    overrides = effective_overrides(overrides, datasets)
    check_concurrency(concurrency)
    selected = _prepare(params_path, overrides, variants, check_data)
    overrides = pretrain_first(params_path, overrides)
    keywords_task(params_path, overrides)
    outcomes = run_variants(params_path, overrides, selected, concurrency=concurrency, register=register_models,
                            nproc_per_node=nproc_per_node)
    leaderboard = leaderboard_task(params_path, overrides)
    publish_artifacts(outcomes, leaderboard)
    logger.info(f"benchmark: {len(selected)} variants; leaderboard {leaderboard['markdown']}")
    return _finish(outcomes, leaderboard, started)


@flow(name="variant", task_runner=ThreadPoolTaskRunner(max_workers=4), persist_result=True, log_prints=True)
def one_variant(
    variant: str,
    datasets: list[str] | None = None,
    overrides: list[str] | None = None,
    params_path: str = "params.yaml",
    register_models: bool = True,
    nproc_per_node: int = 1,
    check_data: bool = True,
) -> dict[str, Any]:
    """One variant: keywords -> train (torchrun when ``nproc_per_node`` > 1) -> evaluate -> c2f -> register -> leaderboard."""
    collect_library_logs()
    started = time.perf_counter()
    overrides = effective_overrides(overrides, datasets)
    _prepare(params_path, overrides, [variant], check_data)
    overrides = pretrain_first(params_path, overrides)
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
    logger.info(decision["message"])
    return decision
