"""``rsitr report``: the visual retrieval report of one variant on one test set.

Writes ``<reports>/retrieval/<variant>/<test_set>[.<lang>].html`` (self-contained: images
inlined as base64) and ``.png`` beside it, and attaches both to the variant's MLflow run
(``models/<variant>/run.json``) when it has one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rsitr.config import RsitrParams
from rsitr.reporting.examples import build_examples
from rsitr.reporting.figure import render_png
from rsitr.reporting.html_page import render_html


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    png: Path
    metrics: dict[str, float]
    run_id: str | None


def report_paths(params: RsitrParams, variant: str, test_set: str, language: str) -> tuple[Path, Path]:
    stem = test_set if language == "en" else f"{test_set}.{language}"
    folder = Path(params.paths.reports) / "retrieval" / variant
    return folder / f"{stem}.html", folder / f"{stem}.png"


def _attach_to_run(params: RsitrParams, variant: str, files: list[Path]) -> str | None:
    from rsitr.tracking.mlflow_tracking import Tracker, tracking_uri, ensure_reachable
    from rsitr.training.stages import RUN_FILE
    from rsitr.training.trainer import model_dir

    run_file = model_dir(params, variant) / RUN_FILE
    if not run_file.is_file():
        return None
    run_id = json.loads(run_file.read_text())["run_id"]
    uri = tracking_uri(params)
    ensure_reachable(uri, params.tracking.connect_timeout_s)
    tracker = Tracker(uri, run_id)
    for path in files:
        tracker.log_artifact(path, "reports")
    return run_id


def write_retrieval_report(
    params: RsitrParams, variant: str, test_set: str, language: str = "en", *, queries: int = 4, k: int = 5,
    seed: int = 0, track: bool = True,
) -> ReportFiles:
    """Score ``test_set`` with the trained ``variant`` and write the HTML page and the PNG figure."""
    examples = build_examples(params, variant, test_set, language, queries=queries, k=k, seed=seed)
    html, png = report_paths(params, variant, test_set, language)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(render_html(examples, seed=seed), encoding="utf-8")
    render_png(examples, png)
    run_id = _attach_to_run(params, variant, [html, png]) if track else None
    return ReportFiles(html, png, examples.metrics, run_id)
