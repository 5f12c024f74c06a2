"""MLflow run tracking with explicit run ids.

MLflow's "active run" is per thread, and Prefect runs tasks in threads, so rsitr never
relies on it: a ``Tracker`` holds a ``MlflowClient`` and the run id, and every call names
the run. The tracking URI comes from ``MLFLOW_TRACKING_URI`` or ``params.tracking.uri``
(default: a SQLite file in the repository). An unreachable server fails in seconds,
before any training starts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from rsitr.config import RsitrParams, flatten, to_dict
from rsitr.errors import TrackingError

MAX_PARAM_LENGTH = 500


def tracking_uri(params: RsitrParams) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``params.tracking.uri``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri


HTTP_TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
HTTP_RETRIES_ENV = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
HTTP_BACKOFF_ENV = "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"
FIX = ("Start it (`mlflow server --host 127.0.0.1 --port 5000`) or point tracking.uri / MLFLOW_TRACKING_URI at a "
       "reachable server (default: sqlite:///mlflow.db)")


URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


_FLUENT_LOCK = threading.RLock()  # the fluent URIs are process-wide: one block at a time (Prefect task threads)


@contextlib.contextmanager
def fluent_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent API (``log_model``, ``load_model``, ``download_artifacts``) on ``uri`` for the block only.

    ``mlflow.set_tracking_uri`` and ``set_registry_uri`` also write MLFLOW_TRACKING_URI and
    MLFLOW_REGISTRY_URI, and :func:`tracking_uri` lets the environment win over params: left
    behind, they would send every later run of this process (another params file) to ``uri``.
    The URIs are global, so concurrent blocks (registrations in a flow's task threads) take turns.
    """
    import mlflow

    with _FLUENT_LOCK:
        saved_env = {name: os.environ.get(name) for name in URI_VARIABLES}
        saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()  # as resolved (public API)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield
        finally:
            _restore_uris(saved, saved_env)


def _restore_uris(saved: tuple[str, str], saved_env: dict[str, str | None]) -> None:
    """Clear the URIs set in the block, then pin a saved one only where clearing does not give it back.

    A resolved default (nothing set) is not pinned, so it keeps following the working directory.
    """
    import mlflow

    def restore_env() -> None:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    restore_env()
    if mlflow.get_tracking_uri() != saved[0]:
        mlflow.set_tracking_uri(saved[0])
    if mlflow.get_registry_uri() != saved[1]:
        mlflow.set_registry_uri(saved[1])
    restore_env()  # set_*_uri write the variables too


def bound_http_calls(timeout_s: float) -> None:
    """MLflow's HTTP client waits 120 s per request and retries 7 times with backoff (minutes on a
    broken server); rsitr's calls give up in seconds unless the user set these variables."""
    os.environ.setdefault(HTTP_TIMEOUT_ENV, str(max(5, int(timeout_s * 4))))
    os.environ.setdefault(HTTP_RETRIES_ENV, "2")
    os.environ.setdefault(HTTP_BACKOFF_ENV, "1")


def _get(url: str, timeout_s: float) -> int:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - user-configured URI
        return response.status


def _check_http(uri: str, timeout_s: float) -> None:
    """``/health`` and one real API call: a server can be up and still fail every request."""
    base = uri.rstrip("/")
    for url, what in ((f"{base}/health", "/health"),
                      (f"{base}/api/2.0/mlflow/experiments/search?max_results=1", "the experiments API")):
        try:
            status = _get(url, timeout_s)
        except urllib.error.HTTPError as exc:
            raise TrackingError(f"MLflow tracking server {uri} answered {exc.code} on {what}; check the server's "
                                f"log, or {FIX[0].lower()}{FIX[1:]}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingError(f"MLflow tracking server {uri} is unreachable ({reason}). {FIX}") from None
        if status >= 400:
            raise TrackingError(f"MLflow tracking server {uri} answered {status} on {what}. {FIX}")


_READY_STORES: set[str] = set()


def _create_sqlite_store(uri: str, database: Path) -> None:
    """Create (or migrate) the SQLite store under a file lock, once per process.

    Two processes opening a fresh database at once both run MLflow's schema migrations and
    one dies in alembic; the lock makes the second wait for the first.
    """
    if uri in _READY_STORES:
        return
    from filelock import FileLock
    from mlflow.tracking import MlflowClient

    with FileLock(str(database) + ".lock", timeout=300):
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    _READY_STORES.add(uri)


def _is_file_store(uri: str) -> bool:
    return uri.startswith(("file:", "/", "./", "../", "~")) or uri == "mlruns"


def ensure_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with the fix, when the tracking store cannot be used."""
    bound_http_calls(timeout_s)
    if uri.startswith(("http://", "https://")):
        _check_http(uri, timeout_s)
    elif uri.startswith("sqlite:///"):
        database = Path(uri[len("sqlite:///"):]).expanduser().resolve()
        if not database.parent.is_dir() or not os.access(database.parent, os.W_OK):
            raise TrackingError(f"tracking database folder {database.parent} is missing or not writable; "
                                "fix tracking.uri")
        _create_sqlite_store(uri, database)
    elif _is_file_store(uri) and os.environ.get("MLFLOW_ALLOW_FILE_STORE") != "true":
        raise TrackingError(f"tracking.uri {uri!r} is a file store, which MLflow 3 keeps in maintenance mode; use "
                            "sqlite:///mlflow.db (`mlflow migrate-filestore` moves old runs) or set "
                            "MLFLOW_ALLOW_FILE_STORE=true")


def git_commit(cwd: str | Path = ".") -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def context_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """MLflow's standard context tags (user, source name and type, git commit) plus ``tags``.

    ``MlflowClient.create_run`` adds none of them itself (only the fluent ``start_run`` does);
    rsitr creates runs by id for thread safety, so it resolves them here.
    """
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT

    resolved = dict(resolve_tags(dict(tags)))
    commit = git_commit()
    if commit != "unknown":
        resolved.setdefault(MLFLOW_GIT_COMMIT, commit)
        resolved.setdefault("git_commit", commit)
    return resolved


def _clean(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, (list, tuple, dict)) else str(value)
    return text[:MAX_PARAM_LENGTH]


def _reopen(client: Any, uri: str, run_id: str) -> None:
    """Mark an existing run RUNNING again; a run the store does not have is a one-line error."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException:
        raise TrackingError(f"MLflow run {run_id} is not in the tracking store {uri}; use the tracking URI it was "
                            "started with (MLFLOW_TRACKING_URI / tracking.uri), or train again without --resume") from None
    client.update_run(run_id, status="RUNNING")


_OPEN_RUNS: dict[str, "Tracker"] = {}  # started and not ended in this process


def end_open_runs(status: str = "KILLED") -> list[str]:
    """Mark every run this process still holds open (e.g. on SIGTERM, whatever thread runs it)."""
    ended = []
    for tracker in list(_OPEN_RUNS.values()):
        try:
            tracker.end(status)
            ended.append(tracker.run_id)
        except Exception:  # noqa: BLE001 - best effort while the process is going down
            pass
    return ended


class Tracker:
    """One MLflow run, addressed by id (thread-safe for Prefect tasks)."""

    def __init__(self, uri: str, run_id: str):
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.run_id = run_id
        self.client = MlflowClient(tracking_uri=uri)
        _OPEN_RUNS[run_id] = self

    @classmethod
    def start(
        cls, params: RsitrParams, run_name: str, tags: Mapping[str, str], run_id: str | None = None
    ) -> "Tracker":
        """Create (or re-open, given ``run_id``) a run in ``params.tracking.experiment``, with context tags."""
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(params)
        ensure_reachable(uri, params.tracking.connect_timeout_s)
        client = MlflowClient(tracking_uri=uri)
        if run_id:
            _reopen(client, uri, run_id)
            return cls(uri, run_id)
        experiment = client.get_experiment_by_name(params.tracking.experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(params.tracking.experiment)
        all_tags = context_tags({k: _clean(v) for k, v in tags.items()})
        run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
        return cls(uri, run.info.run_id)

    def log_params(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, _clean(v)) for k, v in values.items() if k not in existing]
        for first in range(0, len(fresh), 100):
            self.client.log_batch(self.run_id, params=fresh[first : first + 100])

    def log_config(self, params: RsitrParams, variant: str) -> None:
        """Flattened params of this variant (its own section + shared model/data settings)."""
        tree = to_dict(params)
        selected = {
            "variant": variant,
            "model": tree["model"],
            "data": {"datasets": [d["name"] for d in tree["datasets"]], "dedup": tree["dedup"], "split": tree["split"]},
            **{k: v for k, v in tree["variants"][variant].items() if k != "name"},
        }
        self.log_params(flatten(selected))

    def log_metrics(self, values: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, step or 0) for k, v in values.items() if v is not None and math.isfinite(float(v))
        ]
        for first in range(0, len(metrics), 500):
            self.client.log_batch(self.run_id, metrics=metrics[first : first + 500])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, _clean(value))

    def log_data_version(self, name: str, version: str, source: str, context: str = "training") -> None:
        """The data a run used, as an MLflow dataset input (``mlflow.data``): name, md5 digest, source."""
        import warnings

        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        with warnings.catch_warnings():  # "source type inferred": a local file is what we mean
            warnings.simplefilter("ignore")
            dataset = MetaDataset(source=resolve_dataset_source(source), name=name, digest=version[:36])
        entity = DatasetInput(Dataset(**dataset.to_dict()), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
        self.client.log_inputs(self.run_id, datasets=[entity])
        self.set_tags({"data.version": version})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
        _OPEN_RUNS.pop(self.run_id, None)
