"""Human-facing outputs: the visual retrieval report and the end-of-run summary.

``write_retrieval_report`` (``rsitr report``) renders top-k retrieval examples as a
self-contained HTML page and a PNG; ``print_summary`` (``rsitr summary``, the last step of
``make run``) says where the results are and prints the leaderboard's top rows.
"""

from __future__ import annotations

from rsitr.reporting.report import ReportFiles, write_retrieval_report
from rsitr.reporting.summary import print_summary

__all__ = ["ReportFiles", "print_summary", "write_retrieval_report"]
