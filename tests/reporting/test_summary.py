"""``rsitr summary``: where the results are and the leaderboard's top rows, read from files only."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from rsitr.config import load_params
from rsitr.app.steps.summary import print_summary
from rsitr.tracking.claims import COLUMNS as CLAIM_COLUMNS
from rsitr.tracking.leaderboard import COLUMNS


def _row(label: str, model: str, mR: float, test_set: str = "synth_rsicd") -> dict:
    return {**dict.fromkeys(COLUMNS), "label": label, "model": model, "mR": mR, "i2t_R1": mR / 2, "t2i_R1": mR / 3,
            "test_set": test_set, "language": "en"}


def test_summary_points_to_results_and_ranks_measured_rows(tmp_path: Path, monkeypatch) -> None:
    from rsitr_tests_toy_project import write_params  # loaded by conftest

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = load_params(write_params(tmp_path))
    out = io.StringIO()
    print_summary(params, out=out)
    text = out.getvalue()
    assert f"{tmp_path / 'metrics'}/<variant>/<test_set>.json (0 files)" in text
    assert "not written yet: run `rsitr leaderboard`" in text
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}" in text

    (tmp_path / "metrics" / "finetune").mkdir(parents=True)
    (tmp_path / "metrics" / "finetune" / "synth_rsicd.json").write_text("{}")
    (tmp_path / "models" / "finetune").mkdir(parents=True)
    (tmp_path / "models" / "finetune" / "best.pt").write_bytes(b"")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "leaderboard.md").write_text("# rsitr leaderboard\n")
    rows = [_row("measured", "zeroshot", 10.0), {**_row("measured", "finetune", 30.0), "mR_ci_low": 27.5, "mR_ci_high": 32.25},
            _row("reported", "EBAKER", 40.7, "RSICD"), _row("measured", "finetune", 20.0, "synth_sydney")]
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(reports / "leaderboard.csv", index=False)
    out = io.StringIO()
    print_summary(params, out=out)
    text = out.getvalue()
    assert "(1 files)" in text and "best.pt (finetune)" in text and "not written yet" not in text
    lines = text.splitlines()
    start = lines.index("  synth_rsicd [en]  (mR | i2t R@1 | t2i R@1)")
    assert lines[start + 1].split()[:2] == ["finetune", "30.00"] and lines[start + 2].split()[:2] == ["zeroshot", "10.00"]
    assert lines[start + 1].endswith("CI [27.50, 32.25]") and "CI" not in lines[start + 2]
    assert "Claims" not in text  # no claims.csv yet
    assert "  synth_sydney [en]  (mR | i2t R@1 | t2i R@1)" in lines
    assert "EBAKER" not in text and "+ 1 published (reported) rows" in text
    claim = {**dict.fromkeys(CLAIM_COLUMNS), "claim": "EBAKER beats CLIP fine-tuning", "test_set": "synth_rsicd",
             "language": "en", "method": "ebaker", "baseline": "finetune", "measure": "mR", "measured_effect": -8.2,
             "ci_low": -13.3, "ci_high": -2.9, "verdict": "not reproduced"}
    pd.DataFrame([claim], columns=list(CLAIM_COLUMNS)).to_csv(reports / "claims.csv", index=False)
    out = io.StringIO()
    print_summary(params, out=out)
    assert ("  not reproduced  synth_rsicd [en] ebaker vs finetune (mR): -8.20 [-13.30, -2.90] - EBAKER beats CLIP "
            "fine-tuning") in out.getvalue().splitlines()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    out = io.StringIO()
    print_summary(params, out=out)
    assert "browse: open http://mlflow.example:5000 in a browser" in out.getvalue()


def test_summary_curves_print_each_variants_val_mR_per_epoch(small_toy_benchmark, tmp_path: Path, capsys) -> None:
    import json

    import yaml

    from toy_data import toy_params_dict
    from rsitr import cli
    from rsitr.app.steps.training import run_train
    from rsitr.config import params_from_dict

    raw = toy_params_dict(small_toy_benchmark, epochs=2)
    for key in ("models", "metrics", "reports"):
        raw["paths"][key] = str(tmp_path / key)
    params = params_from_dict(raw)
    for variant in ("finetune", "zeroshot"):
        run_train(params, variant, track=False, progress=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert cli.main(["summary", "--params", str(tmp_path / "params.yaml"), "--curves"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("Validation curves (val mR after each data pass") for line in lines)
    stored = json.loads((tmp_path / "models" / "finetune" / "train.json").read_text())
    best = stored["best_epoch"]
    expected = "  ".join(f"{p['paper_epoch']:.2f}: {p['val_mR']:.2f}{'*' if p['epoch'] == best else ''}"
                         for p in stored["val_curve"])
    finetune = next(line for line in lines if line.startswith("  finetune "))
    assert finetune.split(None, 1)[1] == f"{expected}  (6 optimizer steps)"
    assert next(line for line in lines if line.startswith("  zeroshot ")).endswith("evaluation only: no training")
    (tmp_path / "models" / "finetune" / "train.json").write_text("{not json")  # one clear line, no traceback
    assert cli.main(["summary", "--params", str(tmp_path / "params.yaml"), "--curves"]) == 0
    broken = capsys.readouterr().out.splitlines()
    assert any(line.startswith("  finetune: ") and line.endswith("retrain it: rsitr train --variant finetune")
               for line in broken)
    assert cli.main(["summary", "--params", str(tmp_path / "params.yaml")]) == 0
    assert "Validation curves" not in capsys.readouterr().out
