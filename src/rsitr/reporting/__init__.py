"""Human-facing outputs: the visual retrieval report.

``write_report_files`` renders top-k retrieval examples as a self-contained HTML page and
a PNG (``rsitr report`` wires it, in ``rsitr.app.steps.reports``).
"""

from __future__ import annotations

from rsitr.reporting.report import ReportFiles, write_report_files

__all__ = ["ReportFiles", "write_report_files"]
