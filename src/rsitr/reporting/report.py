"""The visual retrieval report of one variant on one test set: an HTML page and a PNG.

``write_report_files`` renders scored retrieval examples (``rsitr.reporting.examples``) as
a self-contained HTML page (images inlined as base64) and a PNG figure beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rsitr.reporting.examples import RetrievalExamples
from rsitr.reporting.figure import render_png
from rsitr.reporting.html_page import render_html


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    png: Path
    metrics: dict[str, float]
    run_id: str | None


def write_report_files(examples: RetrievalExamples, html: Path, png: Path, *, seed: int = 0) -> tuple[Path, Path]:
    """Write the HTML page and the PNG figure of ``examples``."""
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(render_html(examples, seed=seed), encoding="utf-8")
    render_png(examples, png)
    return html, png
