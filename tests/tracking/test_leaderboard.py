"""The leaderboard: measured rows from MLflow, reported rows from papers, never mixed."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from rsitr.config import load_params
from rsitr.tracking.leaderboard import MEASURED, REPORTED, benchmark_of, measured_rows, reference_rows
from rsitr.app.steps.leaderboard import run_leaderboard


def _tables(markdown: str) -> list[list[str]]:
    """The markdown tables as lists of body lines."""
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current[2:])
            current = []
    return tables + ([current[2:]] if current else [])


def test_benchmark_names_map_only_real_benchmarks() -> None:
    assert benchmark_of("rsicd") == "RSICD"
    assert benchmark_of("RSITMD_precomp") == "RSITMD"
    assert benchmark_of("ucm-captions") == "UCM"
    assert benchmark_of("nwpu") == "NWPU"
    assert benchmark_of("synth_rsicd") is None
    assert benchmark_of("synth_sydney") is None
    assert benchmark_of("rsicdx") is None


def test_reference_rows_carry_a_citation_each() -> None:
    rows = reference_rows()
    assert len(rows) >= 20 and set(rows["label"]) == {REPORTED}
    assert rows["citation"].str.len().min() > 20 and rows["source"].str.len().min() > 5
    pe_rsitr = rows[(rows["model"].str.startswith("PE-RSITR")) & (rows["benchmark"] == "RSICD")].iloc[0]
    assert pe_rsitr["mR"] == pytest.approx(31.12) and pe_rsitr["trainable_params"] == 161088
    assert "Parameter-Efficient Transfer Learning" in pe_rsitr["citation"]


def test_leaderboard_lists_every_variant_and_separates_reported_rows(trained_toy: Path, rsitr_cli) -> None:
    code, out, err = rsitr_cli("leaderboard", "--params", str(trained_toy))
    assert code == 0, err
    params = load_params(trained_toy)
    markdown = (Path(params.paths.reports) / "leaderboard.md").read_text()
    table = pd.read_csv(Path(params.paths.reports) / "leaderboard.csv")

    measured = table[table["label"] == MEASURED]
    assert sorted(measured["model"]) == ["finetune", "zeroshot"]
    assert set(measured["test_set"]) == {"toy"}
    finetune = measured[measured["model"] == "finetune"].iloc[0]
    assert finetune["trainable_params"] == finetune["total_params"] > 0
    assert measured[measured["model"] == "zeroshot"].iloc[0]["trainable_params"] == 0
    assert finetune["train_seconds"] > 0 and finetune["inference_s"] > 0
    from mlflow.tracking import MlflowClient

    logged = MlflowClient(tracking_uri=params.tracking.uri).get_run(finetune["run_id"]).data.metrics
    assert finetune["optimizer_steps"] == logged["total_steps"] == params.variant("finetune").train.epochs * logged["steps_per_pass"] > 0
    assert measured[measured["model"] == "zeroshot"].iloc[0]["optimizer_steps"] == 0
    assert table[table["label"] == REPORTED]["optimizer_steps"].isna().all()
    header = next(line for line in markdown.splitlines() if line.startswith("| label ") and "train time" in line)
    assert "| steps " in header and header.index("| steps ") < header.index("| train time ")
    assert "steps = the optimizer steps of the variant's own training run" in markdown
    for column in ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR"):
        assert 0 <= finetune[column] <= 100

    reported = table[table["label"] == REPORTED]
    assert len(reported) == len(reference_rows()) and reported["citation"].notna().all()
    # toy is not a real benchmark: the papers' rows only sit in the separate, labelled section
    assert "## toy [en]" in markdown
    toy_section = markdown.split("## toy [en]")[1].split("## Published results")[0]
    assert REPORTED not in toy_section.replace(f"*{REPORTED}*", "")
    assert "## Published results (reported, on the real benchmarks — not comparable to synthetic test sets)" in markdown
    assert "## Sources" in markdown and "Parameter-Efficient Transfer Learning" in markdown
    for rows in _tables(markdown):
        labels = {line.split("|")[1].strip() for line in rows}
        assert labels in ({MEASURED}, {REPORTED})  # never a table with both kinds


class FakeRuns:
    """Finished runs with chosen metrics in their own experiment of the toy tracking store."""

    def __init__(self, params_path: Path, experiment: str):
        from mlflow.tracking import MlflowClient

        self.params = load_params(params_path, [f"tracking.experiment={experiment}"])
        self.client = MlflowClient(tracking_uri=self.params.tracking.uri)
        root = Path(self.params.paths.data).parent
        self.experiment = self.client.create_experiment(experiment, artifact_location=(root / experiment).as_uri())
        self.start_time = 1_700_000_000_000  # ms; one second apart, so "latest" is unambiguous

    def run(self, variant: str, metrics: dict[str, float], method: str = "finetune") -> str:
        self.start_time += 1000
        run = self.client.create_run(self.experiment, start_time=self.start_time,
                                     tags={"variant": variant, "method": method})
        for key, value in metrics.items():
            self.client.log_metric(run.info.run_id, key, value)
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id


def _recalls(prefix: str, mR: float) -> dict[str, float]:
    names = ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10")
    return {**{f"{prefix}.{n}": mR for n in names}, f"{prefix}.mR": mR, f"{prefix}.total_s": 1.5}


def test_a_real_benchmark_gets_its_reported_rows_inline_and_c2f_rows_are_kept(trained_toy: Path) -> None:
    fake = FakeRuns(trained_toy, "leaderboard-rsicd")
    fake.run("petl", {**_recalls("test.rsicd_precomp.en", 30.0), **_recalls("test.rsicd_precomp.en.c2f", 29.0),
                      "trainable_params": 161088, "total_params": 151e6, "train_seconds": 3600,
                      "optimizer_steps": 12345})
    files = run_leaderboard(fake.params)
    markdown = files.markdown.read_text()
    section = markdown.split("## rsicd_precomp [en]")[1].split("\n## ")[0]
    assert "**petl**" in section and "**petl + c2f**" in section
    assert "Reported on RSICD" in section and "EBAKER" in section and "40.70" in section
    assert "### RSICD" not in markdown  # not repeated in the published section
    assert "### RSITMD" in markdown.split("## Published results")[1]
    measured = pd.read_csv(files.csv).query("label == 'measured'")
    c2f = measured[measured["model"] == "petl + c2f"].iloc[0]
    assert c2f["mR"] == 29.0 and c2f["inference_s"] == 1.5
    assert c2f["optimizer_steps"] == 12345 and c2f["train_seconds"] == 3600  # the variant's training
    assert measured[["mR_ci_low", "mR_ci_high"]].isna().all().all()  # no stored ranks: no CI, not a failure
    assert re.search(r"\| measured +\| \*\*petl\*\* +\| finetune +\| 30\.00 .*\| 161\.1K +\| 151\.00M +"
                     r"\| 12,345 +\| 1h 00m +\|", section)


def test_latest_finished_run_per_variant_unless_all_runs(trained_toy: Path) -> None:
    fake = FakeRuns(trained_toy, "leaderboard-latest")
    fake.run("finetune", _recalls("test.toy.en", 10.0))
    latest = fake.run("finetune", _recalls("test.toy.en", 20.0))
    fake.run("finetune", {"train_seconds": 5.0})  # newest, but never evaluated: skipped
    rows = measured_rows(fake.params)
    assert list(rows["run_id"]) == [latest] and list(rows["mR"]) == [20.0]
    assert sorted(measured_rows(fake.params, all_runs=True)["mR"]) == [10.0, 20.0]
    assert measured_rows(fake.params, variants=["other"]).empty


def test_stored_ranks_give_the_stored_metrics_and_every_measured_row_its_ci(trained_toy: Path) -> None:
    import json

    from mlflow.tracking import MlflowClient

    from rsitr.app.core.paths import ProjectPaths
    from rsitr.retrieval.ranks import load_ranks

    params = load_params(trained_toy)
    paths = ProjectPaths.of(params)
    for variant in ("finetune", "zeroshot"):
        stored = json.loads(paths.metrics_file(variant, "toy", "en").read_text())
        recomputed = load_ranks(paths.ranks_file(variant, "toy", "en")).metrics()
        assert {k: stored[k] for k in recomputed} == recomputed  # exactly, every recall and mR
    files = run_leaderboard(params)
    measured = pd.read_csv(files.csv).query("label == 'measured'")
    assert measured[["mR_ci_low", "mR_ci_high"]].notna().all().all()
    assert (measured["mR_ci_low"] <= measured["mR"]).all() and (measured["mR"] <= measured["mR_ci_high"]).all()
    assert (measured["mR_ci_high"] > measured["mR_ci_low"]).any()
    run = MlflowClient(tracking_uri=params.tracking.uri).get_run(measured.iloc[0]["run_id"])
    assert run.data.metrics["test.toy.en.mR_ci_low"] == pytest.approx(measured.iloc[0]["mR_ci_low"])
    assert not any("@" in key for key in run.data.metrics)
    claims = pd.read_csv(files.claims)
    zeroshot = claims[(claims["method"] == "zeroshot") & (claims["baseline"] == "zeroshot_random")]
    assert zeroshot.empty  # no zeroshot_random row in the toy project: skipped, not invented
    assert "## Claims" in files.markdown.read_text()
    # the same leaderboard again: the same seeded resamples, the same intervals
    again = pd.read_csv(run_leaderboard(params).csv).query("label == 'measured'")
    assert again["mR_ci_low"].tolist() == measured["mR_ci_low"].tolist()


def test_markdown_tables_are_rendered_by_pandas(trained_toy: Path) -> None:
    from rsitr.tracking.leaderboard import _markdown_table

    lines = _markdown_table(["a", "b|c"], [["1", "x|y"], ["22", ""]])
    expected = pd.DataFrame([["1", "x\\|y"], ["22", ""]], columns=["a", "b|c"]).to_markdown(
        index=False, tablefmt="pipe", disable_numparse=True).splitlines()
    assert lines == expected and lines[2].startswith("| 1 ")


def test_markdown_lists_each_variants_validation_curve(trained_toy: Path) -> None:
    import json

    from rsitr.app.core.paths import ProjectPaths

    params = load_params(trained_toy)
    markdown = run_leaderboard(params).markdown.read_text()
    section = markdown.split("## Validation curves")[1].split("\n## ")[0]
    lines = section.split("```text\n")[1].split("```")[0].splitlines()
    stored = json.loads(ProjectPaths.of(params).train_summary("finetune").read_text())  # 1 epoch
    finetune = next(line for line in lines if line.startswith("finetune  run "))
    assert finetune.endswith(f"1.00: {stored['final']['val_mR']:.2f}*  ({stored['optimizer_steps']:,} optimizer steps)")
    assert next(line for line in lines if line.startswith("zeroshot  run ")).endswith("evaluation only: no training")

    fake = FakeRuns(trained_toy, "leaderboard-curves")  # 3 epochs, epoch 2 re-logged after a resume
    run = fake.run("petl", {**_recalls("test.toy.en", 30.0), **_recalls("test.toy.en.c2f", 29.0),
                            "optimizer_steps": 3000})
    for epoch, value, at in ((1, 40.0, 1), (2, 41.0, 2), (2, 45.5, 3), (3, 44.0, 4)):
        fake.client.log_metric(run, "val_mR", value, timestamp=at, step=epoch)
    markdown = run_leaderboard(fake.params).markdown.read_text()
    assert f"petl  run {run[:8]}  1.00: 40.00  2.00: 45.50*  3.00: 44.00  (3,000 optimizer steps)" in markdown
    assert "petl + c2f  run" not in markdown  # a c2f row is its variant's run: listed once
