"""The promotion gate: challenger vs champion of the same registered model, aliases and tags only.

Versions are created directly on runs with chosen gate metrics (the gate reads the
version's run), so each case costs milliseconds; ``test_registry`` covers real registration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rsitr.config import load_params
from rsitr.errors import TrackingError
from rsitr.tracking.registry import CHALLENGER, CHAMPION, promote


class Registry:
    """A registered model ``<prefix>-finetune`` in the toy tracking store, with helpers."""

    def __init__(self, params_path: Path, prefix: str):
        from mlflow.tracking import MlflowClient

        self.overrides = [f"tracking.model_prefix={prefix}"]
        self.params = load_params(params_path, self.overrides)
        self.params_path = params_path
        self.name = f"{prefix}-finetune"
        uri = self.params.tracking.uri
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.client.create_registered_model(self.name)
        self.experiment = self.client.get_experiment_by_name(self.params.tracking.experiment).experiment_id

    def challenger(self, mR: float | None, data_version: str = "md5-of-data-v1") -> str:
        """A finished run with ``test.toy.en.mR = mR``, registered and aliased challenger."""
        run = self.client.create_run(self.experiment, tags={"variant": "gate-test"})
        if mR is not None:
            self.client.log_metric(run.info.run_id, "test.toy.en.mR", mR)
        self.client.set_terminated(run.info.run_id)
        version = self.client.create_model_version(self.name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                                   tags={"data.version": data_version})
        self.client.set_registered_model_alias(self.name, CHALLENGER, version.version)
        return version.version

    def alias(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.name, alias).version
        except MlflowException:
            return None

    def tags(self, version: str) -> dict[str, str]:
        return self.client.get_model_version(self.name, version).tags

    def cli_args(self, *extra: str) -> list[str]:
        return ["promote", "--params", str(self.params_path), "--set", self.overrides[0], "--variant", "finetune", *extra]


def test_first_challenger_becomes_champion(trained_toy: Path) -> None:
    registry = Registry(trained_toy, "gate1")
    v1 = registry.challenger(40.0)
    decision = promote(registry.params, "finetune")
    assert decision.promoted and decision.champion is None
    assert "no champion yet" in decision.message and "40.00" in decision.message
    assert registry.alias(CHAMPION) == v1 and registry.alias(CHALLENGER) is None
    assert registry.tags(v1)["promotion.status"] == "promoted"


def test_worse_challenger_is_refused_with_both_figures(trained_toy: Path, rsitr_cli) -> None:
    registry = Registry(trained_toy, "gate2")
    v1 = registry.challenger(40.0)
    promote(registry.params, "finetune")
    v2 = registry.challenger(38.5)
    code, out, err = rsitr_cli(*registry.cli_args())
    assert code == 1
    message = err.strip()
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("rsitr: promotion refused:")
    assert "38.50" in message and "40.00" in message and "test.toy.en.mR" in message and "--force" in message
    assert registry.alias(CHAMPION) == v1 and registry.alias(CHALLENGER) == v2
    assert registry.tags(v2)["promotion.status"] == "refused"


def test_improvement_below_margin_is_refused_and_above_is_promoted(trained_toy: Path, rsitr_cli) -> None:
    registry = Registry(trained_toy, "gate3")
    registry.challenger(40.0)
    promote(registry.params, "finetune")
    v2 = registry.challenger(40.3)  # +0.3 < margin 0.5
    refused = promote(registry.params, "finetune")
    assert refused.status == "refused" and refused.challenger_value == pytest.approx(40.3)
    assert refused.champion_value == pytest.approx(40.0) and registry.alias(CHALLENGER) == v2
    v3 = registry.challenger(41.0)  # +1.0 >= 0.5
    code, out, err = rsitr_cli(*registry.cli_args())
    assert code == 0, err
    assert f"{registry.name} v{v3} promoted to champion" in out and "+1.00" in out
    assert registry.alias(CHAMPION) == v3 and registry.alias(CHALLENGER) is None
    assert registry.tags(v3)["promotion.previous_champion"] == "1"


def test_force_overrides_the_gate_and_records_the_reason(trained_toy: Path, rsitr_cli) -> None:
    registry = Registry(trained_toy, "gate4")
    registry.challenger(40.0)
    promote(registry.params, "finetune")
    v2 = registry.challenger(30.0)
    code, out, err = rsitr_cli(*registry.cli_args("--force", "--reason", "roll back to the old data"))
    assert code == 0, err
    assert "by --force (reason: roll back to the old data)" in out
    tags = registry.tags(v2)
    assert tags["promotion.forced"] == "true" and tags["promotion.status"] == "forced"
    assert tags["promotion.reason"] == "roll back to the old data"
    assert tags["promotion.challenger_value"] == "30.00" and tags["promotion.champion_value"] == "40.00"
    assert registry.alias(CHAMPION) == v2


def test_missing_challenger_or_metric_is_an_error(trained_toy: Path, rsitr_cli) -> None:
    registry = Registry(trained_toy, "gate5")
    code, _, err = rsitr_cli(*registry.cli_args())
    assert code == 2 and "no 'challenger' version" in err and "rsitr register --variant finetune" in err
    registry.challenger(None)
    with pytest.raises(TrackingError, match="has no metric test.toy.en.mR"):
        promote(registry.params, "finetune")


def test_the_gate_refuses_a_challenger_trained_on_another_data_version(trained_toy: Path) -> None:
    registry = Registry(trained_toy, "gate-data")
    v1 = registry.challenger(40.0, data_version="aaaa1111")
    assert promote(registry.params, "finetune").promoted
    v2 = registry.challenger(90.0, data_version="bbbb2222")  # far better, but on other data
    decision = promote(registry.params, "finetune")
    assert decision.status == "refused" and registry.alias(CHAMPION) == v1 and registry.alias(CHALLENGER) == v2
    assert "aaaa1111" in decision.message and "bbbb2222" in decision.message and "data version" in decision.message
    v3 = registry.challenger(90.0, data_version="aaaa1111")  # same data: the gate compares and promotes
    assert promote(registry.params, "finetune").promoted and registry.alias(CHAMPION) == v3
