"""``rsitr report``: the visual retrieval report of one trained variant on one test set.

Writes ``<reports>/retrieval/<variant>/<test_set>[.<lang>].html`` and ``.png`` and attaches
both to the variant's MLflow run when it has one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsitr.app.core.paths import ProjectPaths
from rsitr.app.core.runs import read_run_record
from rsitr.app.core.runs import published_checkpoint
from rsitr.config import RsitrParams
from rsitr.data.images import ImageLoader
from rsitr.data.manifest import RetrievalSplit, read_manifest, select_split
from rsitr.models import resolve_device
from rsitr.models.trained import load_trained_model
from rsitr.reporting import ReportFiles, write_report_files
from rsitr.reporting.examples import build_examples
from rsitr.retrieval.evaluate import encode_split
from rsitr.tracking.mlflow_tracking import Tracker, ensure_reachable, tracking_uri


def score_split(params: RsitrParams, variant: str, test_set: str, language: str) -> tuple[RetrievalSplit, np.ndarray]:
    """The test split and the trained variant's score matrix ``[N, C]`` on it."""
    v = params.variant(variant)
    params.dataset(test_set)
    paths = ProjectPaths.of(params)
    model = load_trained_model(params, v, published_checkpoint(params, variant))
    device = resolve_device(v.train.device)
    model.to(device)
    split = select_split(read_manifest(paths.manifest), "test", datasets=[test_set], languages=[language],
                         normalize_arabic=params.text.normalize_arabic)
    loader = ImageLoader.for_model(model, cache=False)
    images, texts, _ = encode_split(model, split, loader, v.eval.batch_size, device)
    return split, model.score(images, texts).float().cpu().numpy()  # [N, C]


def report_paths(params: RsitrParams, variant: str, test_set: str, language: str) -> tuple[Path, Path]:
    stem = test_set if language == "en" else f"{test_set}.{language}"
    folder = ProjectPaths.of(params).retrieval_report_dir(variant)
    return folder / f"{stem}.html", folder / f"{stem}.png"


def _attach_to_run(params: RsitrParams, variant: str, files: list[Path]) -> str | None:
    record = read_run_record(params, variant)
    if record is None or not record.run_id:
        return None
    uri = tracking_uri(params)
    ensure_reachable(uri, params.tracking.connect_timeout_s)
    tracker = Tracker(uri, record.run_id)
    for path in files:
        tracker.log_artifact(path, "reports")
    return record.run_id


def write_retrieval_report(
    params: RsitrParams, variant: str, test_set: str, language: str = "en", *, queries: int = 4, k: int = 5,
    seed: int = 0, track: bool = True,
) -> ReportFiles:
    """Score ``test_set`` with the trained ``variant`` and write the HTML page and the PNG figure."""
    split, scores = score_split(params, variant, test_set, language)
    examples = build_examples(split, scores, variant, test_set, language, queries=queries, k=k, seed=seed)
    html, png = write_report_files(examples, *report_paths(params, variant, test_set, language), seed=seed)
    run_id = _attach_to_run(params, variant, [html, png]) if track else None
    return ReportFiles(html, png, examples.metrics, run_id)
