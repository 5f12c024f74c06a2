"""``rsitr summary``: where the results of the last run are, and the leaderboard's top rows.

``--curves`` adds each variant's validation curve (val mR per epoch, from ``models/<variant>/train.json``;
``rsitr.tracking.curves``).

Reads only files (``metrics/``, ``models/``, ``reports/leaderboard.csv``, ``reports/claims.csv``), so it is instant
and works without the tracking server; the leaderboard itself is written from MLflow by
the last step of the benchmark flow (``rsitr leaderboard`` by hand).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from rsitr.config import RsitrParams
from rsitr.tracking.curves import curve_lines
from rsitr.tracking.mlflow_tracking import tracking_uri

TOP_ROWS = 5


def _mlflow_hint(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


def _top_rows(csv_path: Path, top: int) -> list[str]:
    import pandas as pd

    table = pd.read_csv(csv_path)
    measured = table[table["label"] == "measured"]
    lines = []
    for (test_set, language), rows in measured.groupby(["test_set", "language"], sort=True):
        lines.append(f"  {test_set} [{language}]  (mR | i2t R@1 | t2i R@1)")
        for row in rows.sort_values("mR", ascending=False, kind="stable").head(top).itertuples():
            ci = "" if pd.isna(getattr(row, "mR_ci_low", None)) else f"  CI [{row.mR_ci_low:.2f}, {row.mR_ci_high:.2f}]"
            lines.append(f"    {row.model:<24} {row.mR:6.2f} | {row.i2t_R1:6.2f} | {row.t2i_R1:6.2f}{ci}")
    reported = int((table["label"] == "reported").sum())
    if reported:
        lines.append(f"  + {reported} published (reported) rows with citations in the leaderboard")
    return lines


def _claim_lines(csv_path: Path) -> list[str]:
    """One line per claim of ``claims.csv``: verdict, effect and interval."""
    import pandas as pd

    claims = pd.read_csv(csv_path)
    if claims.empty:
        return ["  (no claim has both of its rows in the leaderboard)"]
    lines = []
    for row in claims.itertuples():
        interval = "" if pd.isna(row.ci_low) or row.measure == "trainable_share" else \
            f" [{row.ci_low:+.2f}, {row.ci_high:+.2f}]"
        effect = "n/a" if pd.isna(row.measured_effect) else f"{row.measured_effect:.2f}%" \
            if row.measure == "trainable_share" else f"{row.measured_effect:+.2f}"
        lines.append(f"  {row.verdict:<15} {row.test_set} [{row.language}] {row.method} vs {row.baseline} "
                     f"({row.measure}): {effect}{interval} - {row.claim}")
    return lines


def _curve_section(models: Path) -> list[str]:
    """Each trained variant's val mR per epoch, read from its ``train.json``."""
    summaries, unreadable = {}, []
    for path in sorted(models.glob("*/train.json")):
        try:
            summaries[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            unreadable.append(f"  {path.parent.name}: {path} is unreadable ({type(error).__name__}); "
                              f"retrain it: rsitr train --variant {path.parent.name}")
    head = ["", "Validation curves (val mR after each data pass, labelled with the paper epoch reached; * = best, "
                "the kept checkpoint; "
                f"{models}/<variant>/train.json):"]
    lines = curve_lines(summaries) + unreadable
    return head + (lines or ["  (no variant trained yet)"])


def print_summary(params: RsitrParams, *, top: int = TOP_ROWS, out: TextIO | None = None,
                  curves: bool = False) -> None:
    """Print where metrics, checkpoints, the leaderboard and the MLflow runs are; then the top rows
    (and, with ``curves``, every variant's validation curve)."""
    out = out or sys.stdout
    metrics, models, reports = (Path(p) for p in (params.paths.metrics, params.paths.models, params.paths.reports))
    metric_files = sorted(metrics.glob("*/*.json"))
    checkpoints = sorted(models.glob("*/best.pt"))
    board, table, claims = reports / "leaderboard.md", reports / "leaderboard.csv", reports / "claims.csv"
    uri = tracking_uri(params)
    lines = [
        "rsitr results",
        f"  metrics:      {metrics}/<variant>/<test_set>.json ({len(metric_files)} files)",
        f"  checkpoints:  {models}/<variant>/best.pt ({', '.join(p.parent.name for p in checkpoints) or 'none yet'})",
        f"  leaderboard:  {board}" + ("" if board.is_file() else " (not written yet: run `rsitr leaderboard`)"),
        f"  MLflow:       {uri}, experiment '{params.tracking.experiment}'; browse: {_mlflow_hint(uri)}",
        f"  reports:      `rsitr report --variant V --test-set T` writes {reports}/retrieval/<variant>/<test_set>.html",
    ]
    if table.is_file():
        lines += ["", "Leaderboard, top rows (measured):"] + _top_rows(table, top)
    if claims.is_file():
        lines += ["", f"Claims ({claims}; rule: docs/uncertainty.md):"] + _claim_lines(claims)
    if curves:
        lines += _curve_section(models)
    out.write("\n".join(lines) + "\n")  # the command's output, to the stream the caller chose
