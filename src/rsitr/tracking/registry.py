"""The MLflow model registry: register a variant's run, promote a challenger past a gate.

Naming: one registered model per variant, ``<tracking.model_prefix>-<variant>`` (e.g.
``rsitr-finetune``), so the gate always compares a challenger with the champion of the
SAME variant; the variant, method and data hashes are also version tags.

Aliases, never stages (MLflow's registry stages are deprecated):

* ``challenger``: set by :func:`register_variant` on the new version; it awaits a decision.
* ``champion``: moved by :func:`promote` when the challenger's gate metric
  ``test.<promotion.test_set>.<promotion.language>.<promotion.metric>`` (read from the
  version's run) beats the champion's by at least ``promotion.margin`` (and is higher);
  with no champion yet, the first challenger is promoted. ``force=True`` skips the gate and
  records the reason. Every decision is recorded as ``promotion.*`` tags on the challenger
  version; a promoted challenger loses the ``challenger`` alias.

:func:`promote` returns a :class:`PromotionDecision`; a refusal is a normal outcome (the CLI
prints its one-line message and exits 1), while a missing model, alias or metric raises
``TrackingError`` (exit 2).
"""

from __future__ import annotations

import getpass
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from rsitr.config import RsitrParams, to_dict
from rsitr.errors import ConfigError, ModelError, TrackingError
from rsitr.tracking.mlflow_tracking import ensure_reachable, fluent_uri, tracking_uri
from rsitr.tracking.pyfunc_model import log_embedding_model
import rsitr.methods  # noqa: F401 - registers the built-in methods before any params are read

CHAMPION = "champion"
CHALLENGER = "challenger"
DATA_VERSION_TAG = "data.version"
RETRIEVAL_METRICS = ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR")


def registered_name(params: RsitrParams, variant: str) -> str:
    """``<model_prefix>-<variant>``: the registered model of one variant."""
    return f"{params.tracking.model_prefix}-{variant}"


def gate_metric_key(params: RsitrParams) -> str:
    p = params.promotion
    return f"test.{p.test_set}.{p.language}.{p.metric}"


def registry_client(params: RsitrParams):
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(params)
    ensure_reachable(uri, params.tracking.connect_timeout_s)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _bundled_params(params: RsitrParams, variant: str) -> dict[str, Any]:
    """The resolved config of this one variant, in the shape ``params_from_dict`` reads back."""
    tree = to_dict(params)
    entry = {k: v for k, v in tree["variants"][variant].items() if k != "name"}
    for start in ("init_from", "init_from_variant"):  # the bundled weights are complete: no parent to find
        entry["train"].pop(start, None)
    tree["variants"] = {variant: entry}
    tree.pop("serve", None)  # how a service runs is not part of the model (and older rsitr reads the bundle too)
    entry.pop("benchmark", None)  # nor which run trains it
    return tree


def _version_tags(params: RsitrParams, variant: str, run: Any) -> dict[str, str]:
    tags = {"variant": variant, "run_id": run.info.run_id, "gate.metric": gate_metric_key(params)}
    for key in ("method", "arch", "pretrained", "git_commit", "datasets"):
        if key in run.data.tags:
            tags[key] = run.data.tags[key]
    tags.update({k: v for k, v in run.data.tags.items() if k.startswith("data.")})
    for key, value in run.data.metrics.items():
        if key.startswith("test.") and key.rsplit(".", 1)[-1] in RETRIEVAL_METRICS:
            tags[f"metric.{key}"] = f"{value:.4f}"
    for key in ("trainable_params", "total_params"):
        if key in run.data.metrics:
            tags[key] = str(int(run.data.metrics[key]))
    return tags


def _ensure_registered_model(client: Any, name: str, variant: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            tags={"variant": variant},
            description=(f"rsitr variant {variant!r}: embeds images and texts (pyfunc). Load with "
                         f"mlflow.pyfunc.load_model('models:/{name}@{CHAMPION}'); input columns 'text' and/or "
                         "'image' (base64 PNG/JPEG or a path), output 'text_embedding'/'image_embedding'."),
        )


@dataclass(frozen=True)
class Registration:
    name: str
    version: str
    run_id: str
    source: str
    reused: bool
    model_id: str | None = None


def finished_run(client: Any, params: RsitrParams, variant: str, run_id: str) -> Any:
    """The MLflow run ``run_id``, which must exist and be FINISHED."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise TrackingError(f"MLflow run {run_id} of variant {variant} not found at {tracking_uri(params)}") from None
    if run.info.status != "FINISHED":
        raise TrackingError(f"run {run_id} of variant {variant} is {run.info.status}; register a finished run")
    return run


def existing_version(client: Any, params: RsitrParams, variant: str, run_id: str) -> Registration | None:
    """The version already registered from ``run_id`` (re-aliased ``challenger``), if any."""
    name = registered_name(params, variant)
    _ensure_registered_model(client, name, variant)
    existing = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if not existing:
        return None
    version = max(existing, key=lambda mv: int(mv.version))
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return Registration(name, str(version.version), run_id, version.source, reused=True,
                        model_id=getattr(version, "model_id", None))


def check_loads(model_uri: str, text: str) -> None:
    """Load the logged model as a server would and embed ``text``; a model that cannot serve is not registered."""
    import mlflow
    import pandas as pd

    try:
        output = mlflow.pyfunc.load_model(model_uri).predict(pd.DataFrame({"text": [text]}))
    except Exception as exc:  # noqa: BLE001 - whatever breaks loading, the message names it
        raise ModelError(f"logged model {model_uri} does not load or predict ({type(exc).__name__}: {exc}); "
                         "not registered") from None
    if output["text_embedding"].iloc[0] is None:
        raise ModelError(f"logged model {model_uri} returned no text embedding; not registered")


def link_test_metrics(client: Any, run: Any, model_id: str) -> None:
    """The run's ``test.*`` figures logged again with ``model_id``, so the logged model (Models tab) shows them."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, 0, model_id=model_id, run_id=run.info.run_id)
               for key, value in run.data.metrics.items() if key.startswith("test.")]
    for first in range(0, len(metrics), 500):
        client.log_batch(run.info.run_id, metrics=metrics[first : first + 500])


def register_model(params: RsitrParams, variant: str, run_id: str, *, model: Any, example_text: str,
                   example_image: str, hash_heads: str | None = None) -> Registration:
    """Log the variant's pyfunc as a logged model of its run, register it, alias it ``challenger``.

    Registering a run that already has a version of this model reuses that version.
    """
    client = registry_client(params)
    run = finished_run(client, params, variant, run_id)
    reused = existing_version(client, params, variant, run_id)
    if reused is not None:
        return reused
    name = registered_name(params, variant)
    with fluent_uri(tracking_uri(params)):
        info = log_embedding_model(run_id, model=model, params_tree=_bundled_params(params, variant),
                                   variant=variant, example_text=example_text, example_image=example_image,
                                   hash_heads=hash_heads)
        link_test_metrics(client, run, info.model_id)
        client.set_terminated(run_id, status="FINISHED")
        check_loads(info.model_uri, example_text)
        version = client.create_model_version(  # resolves the models:/<model_id> source through the fluent URI
            name, info.model_uri, run_id=run_id, tags=_version_tags(params, variant, run),
            description=f"{variant} from run {run_id}", model_id=info.model_id,
        )
    client.set_registered_model_alias(name, CHALLENGER, version.version)
    return Registration(name, str(version.version), run_id, info.model_uri, reused=False, model_id=info.model_id)


# ----------------------------------------------------------------------------- promotion


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of :func:`promote`. ``status``: promoted | refused | unchanged."""

    name: str
    status: str
    challenger: str
    champion: str | None
    metric: str
    challenger_value: float | None
    champion_value: float | None
    margin: float
    forced: bool
    message: str

    @property
    def promoted(self) -> bool:
        return self.status == "promoted"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "promoted": self.promoted}


def _alias(client: Any, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _version_metric(client: Any, version: Any, key: str) -> float | None:
    """The gate metric of a version: its run's metric, else the ``metric.<key>`` version tag."""
    from mlflow.exceptions import MlflowException

    if version.run_id:
        try:
            metrics = client.get_run(version.run_id).data.metrics
            if key in metrics:
                return float(metrics[key])
        except MlflowException:
            pass
    tag = (version.tags or {}).get(f"metric.{key}")
    return float(tag) if tag is not None else None


def _data_version(version: Any) -> str | None:
    """The md5 of the processed manifest the version's run trained and was evaluated on."""
    return (version.tags or {}).get(DATA_VERSION_TAG)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def promote(params: RsitrParams, variant: str, *, force: bool = False, reason: str = "") -> PromotionDecision:
    """Move ``champion`` to the ``challenger`` version when it passes the gate (or ``force``)."""
    params.variant(variant)
    if force and not reason.strip():
        raise ConfigError(f"promote --force skips the gate and needs a reason, recorded on the version: "
                          f"rsitr promote --variant {variant} --force --reason 'why'")
    client = registry_client(params)
    name = registered_name(params, variant)
    key = gate_metric_key(params)
    margin = params.promotion.margin
    challenger = _alias(client, name, CHALLENGER)
    if challenger is None:
        raise TrackingError(f"registered model {name} has no {CHALLENGER!r} version awaiting promotion; "
                            f"register one with `rsitr register --variant {variant}`")
    champion = _alias(client, name, CHAMPION)
    new = _version_metric(client, challenger, key)
    old = _version_metric(client, champion, key) if champion is not None else None

    def decide(status: str, message: str) -> PromotionDecision:
        return PromotionDecision(name, status, str(challenger.version), None if champion is None else str(champion.version),
                                 key, new, old, margin, force and status == "promoted", message)

    if champion is not None and champion.version == challenger.version:
        return decide("unchanged", f"{name} v{challenger.version} is already the {CHAMPION}")
    if new is None and not force:
        raise TrackingError(f"{name} v{challenger.version} (run {challenger.run_id}) has no metric {key}; evaluate "
                            f"it on {params.promotion.test_set} [{params.promotion.language}] "
                            f"(`rsitr evaluate --variant {variant}`) or change promotion.* in params")
    label = f"{name} v{challenger.version}"
    if force:
        why = reason
        decision = decide("promoted", f"{label} promoted to {CHAMPION} by --force (reason: {why}); gate skipped: "
                                      f"{key} {_fmt(new)} vs {CHAMPION} "
                                      f"{'none' if champion is None else f'v{champion.version} {_fmt(old)}'}")
    elif champion is None:
        decision = decide("promoted", f"{label} promoted to {CHAMPION} (no {CHAMPION} yet): {key} {_fmt(new)}")
    elif _data_version(challenger) != _data_version(champion):
        decision = decide("refused", f"{label} not promoted: it was measured on data version "
                                     f"{_data_version(challenger) or 'unknown'} but {CHAMPION} v{champion.version} on "
                                     f"{_data_version(champion) or 'unknown'}; {key} is not comparable across data "
                                     "versions. Retrain the champion's variant on this data, or --force --reason '...'")
    elif old is None:
        decision = decide("refused", f"{label} not promoted: {CHAMPION} v{champion.version} has no {key} to compare "
                                     f"with the challenger's {_fmt(new)}; use --force --reason '...' to promote anyway")
    elif new - old >= margin and new > old:
        decision = decide("promoted", f"{label} promoted to {CHAMPION}: {key} {_fmt(new)} beats {CHAMPION} "
                                      f"v{champion.version} {_fmt(old)} by {new - old:+.2f} (margin {margin:g})")
    else:
        decision = decide("refused", f"{label} not promoted: {key} {_fmt(new)} vs {CHAMPION} v{champion.version} "
                                     f"{_fmt(old)} ({new - old:+.2f}, needs at least +{margin:g}); "
                                     "use --force --reason '...' to override")
    _record(client, decision, challenger.version, reason if force else "")
    return decision


def _record(client: Any, decision: PromotionDecision, version: str, reason: str) -> None:
    """Tags on the challenger version; on promotion, move the aliases."""
    tags = {
        "promotion.status": "forced" if decision.forced else decision.status,
        "promotion.time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "promotion.by": getpass.getuser(),
        "promotion.metric": decision.metric,
        "promotion.challenger_value": _fmt(decision.challenger_value),
        "promotion.champion_value": _fmt(decision.champion_value),
        "promotion.previous_champion": decision.champion or "none",
        "promotion.message": decision.message[:4000],
    }
    if decision.forced:
        tags["promotion.forced"] = "true"
        tags["promotion.reason"] = reason
    for key, value in tags.items():
        client.set_model_version_tag(decision.name, version, key, value)
    if decision.promoted:
        client.set_registered_model_alias(decision.name, CHAMPION, version)
        client.delete_registered_model_alias(decision.name, CHALLENGER)


# ----------------------------------------------------------------------------- resolving for serving


@dataclass(frozen=True)
class ModelVersionRef:
    """One registered model version, and the alias it was reached through (if any)."""

    name: str
    version: str
    alias: str | None
    model_id: str | None
    run_id: str | None
    variant: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"

    def record(self) -> dict[str, Any]:
        """What a gallery index stores about the model it was built with (no file paths)."""
        return {"uri": self.uri, "name": self.name, "version": self.version, "alias": self.alias,
                "model_id": self.model_id, "run_id": self.run_id, "variant": self.variant}


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/<name>@<alias>`` -> (name, alias, None); ``models:/<name>/<version>`` -> (name, None, version)."""
    body = uri[len("models:/"):] if uri.startswith("models:/") else ""
    if "@" in body and "/" not in body:
        name, alias = body.split("@", 1)
        if name and alias:
            return name, alias, None
    elif body.count("/") == 1:
        name, version = body.split("/")
        if name and version.isdigit():
            return name, None, version
    raise ConfigError(f"model URI {uri!r} is not models:/<name>@<alias> nor models:/<name>/<version>")


def _version_ref(version: Any, alias: str | None) -> ModelVersionRef:
    model_id = getattr(version, "model_id", None)
    if not model_id and str(version.source or "").startswith("models:/m-"):  # registered from a logged model
        model_id = str(version.source)[len("models:/"):]
    return ModelVersionRef(name=version.name, version=str(version.version), alias=alias,
                           model_id=model_id, run_id=version.run_id,
                           variant=(version.tags or {}).get("variant"))


def resolve_model_version(params: RsitrParams, uri: str, client: Any = None) -> ModelVersionRef:
    """The version a ``models:/`` URI names now (an alias is followed at call time)."""
    from mlflow.exceptions import MlflowException

    name, alias, number = parse_model_uri(uri)
    client = client or registry_client(params)
    try:
        version = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, number)
    except MlflowException:
        raise TrackingError(f"{uri} does not resolve at {tracking_uri(params)}: no such registered model, alias or "
                            f"version (promote one with `rsitr promote --variant ...`)") from None
    return _version_ref(version, alias)


def version_of_run(params: RsitrParams, run_id: str, client: Any = None) -> ModelVersionRef | None:
    """The latest registered version made from MLflow run ``run_id`` (any model), if any."""
    client = client or registry_client(params)
    found = client.search_model_versions(f"run_id='{run_id}'")
    return _version_ref(max(found, key=lambda mv: int(mv.version)), None) if found else None


def download_model_version(params: RsitrParams, ref: ModelVersionRef, dst: str) -> str:
    """Download the version's model artifacts (weights, config, hash heads; not the code) into ``dst``."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri(params)
    ensure_reachable(uri, params.tracking.connect_timeout_s)
    with fluent_uri(uri):
        return mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{ref.name}/{ref.version}/artifacts",
                                                   dst_path=dst)
