"""MLflow training runs: unique names and the Prefect run that made them (tags)."""

from __future__ import annotations


def test_mlflow_run_names_are_unique_and_tags_name_the_prefect_run(prefect_api) -> None:
    from prefect import flow

    from rsitr.app.steps.training import prefect_run_tags, unique_run_name

    assert unique_run_name("finetune", "ab" * 32).startswith("finetune-abababab-")
    assert unique_run_name("finetune", "ab" * 32) != unique_run_name("finetune", "cd" * 32)
    assert prefect_run_tags() == {}  # outside a flow run: no tags

    @flow
    def tiny() -> tuple[str, dict[str, str]]:
        from prefect.runtime import flow_run

        return str(flow_run.get_id()), prefect_run_tags()

    run_id, tags = tiny()
    assert tags == {"prefect.flow_run_id": run_id}
