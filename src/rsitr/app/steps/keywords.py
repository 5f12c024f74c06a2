"""The keywords step of the model work (EBAKER's KER): top-k train-caption keywords.

Runs in the Prefect flows (``rsitr keywords`` by hand) on the processed manifest DVC
versions; writes ``models/keywords/keywords.txt`` (merged), ``keywords_<lang>.txt``,
``keywords.json`` and ``report.json`` (see :mod:`rsitr.data.keywords`).
"""

from __future__ import annotations

from typing import Any

from rsitr.app.core.files import read_table, write_json, write_lines
from rsitr.app.core.paths import ProjectPaths
from rsitr.config import RsitrParams
from rsitr.data.keywords import extract_keywords
from rsitr.models.keyword_masking import read_keywords


def run_keywords(params: RsitrParams) -> dict[str, Any]:
    """Top-k train-caption keywords per dataset and language, merged."""
    paths = ProjectPaths.of(params)
    manifest = read_table(paths.manifest, "split")
    options = params.keywords
    result = extract_keywords(
        manifest, top_k=options.top_k, min_length=options.min_length, normalize_arabic=options.normalize_arabic
    )
    paths.keywords_dir.mkdir(parents=True, exist_ok=True)
    for stale in paths.keywords_dir.glob("keywords_*.txt"):
        stale.unlink()  # languages no longer present must not leave old lists behind
    for language, words in result.per_language.items():
        write_lines(paths.keywords_for(language), words)
    write_json(paths.keywords_dir / "keywords.json", result.to_json())
    write_json(paths.keywords_dir / "report.json", result.report)
    write_lines(paths.keywords, result.merged)  # last: its presence means the step finished
    return result.report


def variant_keywords(params: RsitrParams) -> list[str]:
    """The merged keyword list the keywords step wrote (a clear error names the step when absent)."""
    return read_keywords(ProjectPaths.of(params).keywords)
