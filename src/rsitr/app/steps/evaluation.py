"""The evaluate step: a variant's best checkpoint on every test set and caption language.

Writes ``metrics/<variant>/<test_set>[.<lang>].json`` (recalls, mR and counts only, so the
same model gives byte-identical files; these are committed and ``dvc metrics show`` reads
them) and adds the figures, timings and parameter counts to the variant's MLflow run
(``test.<set>.<lang>.<metric>``; MLflow names cannot contain ``@``).

Twin diagnostic: when the synthetic benchmark's ``<synth.out>/ground_truth.json`` exists,
its planted twin pairs whose two images are both in a test set add ``twin_acc``,
``twin_acc_t2i``, ``twin_acc_i2t`` and ``twin_pairs`` (``rsitr.retrieval.twins``) to that
test set's file and run, under the same names; a real dataset (no file) or a test set
without a complete pair gets none of them.

Per-query ranks: each evaluation also writes ``models/<variant>/ranks/<test_set>.<lang>.npz``
(``rsitr.retrieval.ranks``: both directions' first-match ranks, the caption->image index,
the image ids and the twin pairs' outcomes) and logs it as the run's artifact
``ranks/<test_set>.<lang>.npz``; the leaderboard's bootstrap reads it from there. It lives
under the git-ignored ``models/`` (not ``metrics/``, which is committed and parsed whole by
``dvc metrics``), so the metrics files stay small and byte-identical across identical runs.
"""

from __future__ import annotations

import logging

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rsitr.app.core.files import write_json
from rsitr.app.core.locks import variant_lock
from rsitr.app.core.paths import ProjectPaths
from rsitr.app.core.runs import read_run_record
from rsitr.app.core.runs import published_checkpoint
from rsitr.app.steps.training import start_tracker
from rsitr.config import RsitrParams
from rsitr.data.images import ImageLoader
from rsitr.data.manifest import read_manifest, select_split
from rsitr.data.synth.generator import GROUND_TRUTH_FILE
from rsitr.errors import DataError
from rsitr.models import resolve_device
from rsitr.models.describe import count_parameters
from rsitr.models.trained import load_trained_model
from rsitr.retrieval.evaluate import evaluate_split
from rsitr.retrieval.ranks import save_ranks
from rsitr.retrieval.twins import twin_index_pairs
from rsitr.tracking.mlflow_tracking import Tracker

logger = logging.getLogger(__name__)

RECALLS = ("i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR")


def evaluation_targets(params: RsitrParams, variant: str) -> list[tuple[str, str]]:
    """(test_set, language) pairs: the variant's eval.test_sets, or every dataset with a test split."""
    v = params.variant(variant)
    manifest = pd.read_parquet(ProjectPaths.of(params).manifest, columns=["dataset", "split", "language"])
    tests = manifest[manifest["split"] == "test"]
    names = list(v.eval.test_sets) or [d.name for d in params.datasets if d.evaluate]
    targets = []
    for name in names:
        languages = set(tests.loc[tests["dataset"] == name, "language"])
        targets += [(name, language) for language in v.eval.languages if language in languages]
    if not targets:
        raise DataError(
            f"variant {variant}: no test captions for test sets {names} in languages {list(v.eval.languages)}; "
            "check eval.test_sets and eval.languages"
        )
    return targets


def ground_truth_twins(params: RsitrParams) -> list[tuple[str, str]]:
    """(original, twin) paths, relative to ``synth.out``, of the planted twins; [] without
    ``<synth.out>/ground_truth.json`` (a project of real datasets)."""
    path = Path(params.synth.out) / GROUND_TRUTH_FILE
    if not path.is_file():
        return []
    try:
        twins = json.loads(path.read_text(encoding="utf-8")).get("twins", [])
        return [(str(t["original"]), str(t["twin"])) for t in twins]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{path}: unreadable twin list ({error}); regenerate it with `dvc repro synth`") from error


def variant_tracker(params: RsitrParams, variant: str) -> Tracker | None:
    """Re-open the MLflow run that trained ``variant`` (None when it was trained untracked)."""
    record = read_run_record(params, variant)
    return start_tracker(params, variant, record.run_id) if record and record.run_id else None


def run_evaluate(params: RsitrParams, variant: str, *, track: bool = True) -> dict[str, Any]:
    """Evaluate the best checkpoint on every test set and language; writes ``metrics/<variant>/``."""
    with variant_lock(params, variant, "evaluate"):
        return _evaluate(params, variant, track)


def _evaluate(params: RsitrParams, variant: str, track: bool) -> dict[str, Any]:
    v = params.variant(variant)
    paths = ProjectPaths.of(params)
    tracker = variant_tracker(params, variant) if track else None
    model = load_trained_model(params, v, published_checkpoint(params, variant))
    device = resolve_device(v.train.device)
    model.to(device)
    counts = count_parameters(model).logged(v.trains)
    loader = ImageLoader.for_model(model, cache=False)
    manifest = read_manifest(paths.manifest)
    twins = ground_truth_twins(params)
    results: dict[str, Any] = {}
    try:
        for test_set, language in evaluation_targets(params, variant):
            split = select_split(manifest, "test", datasets=[test_set], languages=[language],
                                 normalize_arabic=params.text.normalize_arabic)
            evaluation = evaluate_split(model, split, loader, v.eval.batch_size, device,
                                        twin_pairs=twin_index_pairs(split.image_paths, twins))
            figures = {**evaluation["metrics"], **evaluation.get("twins", {})}
            payload = {"variant": variant, "method": v.method, "test_set": test_set, "language": language,
                       **figures, "images": evaluation["images"], "captions": evaluation["captions"], **counts}
            path = write_json(paths.metrics_file(variant, test_set, language), payload)
            ranks = save_ranks(paths.ranks_file(variant, test_set, language), evaluation["ranks"])
            results[path.stem] = {**payload, "timings": evaluation["timings"]}
            logger.info(_summary_line(payload))
            if tracker is not None:
                prefix = f"test.{test_set}.{language}"
                tracker.log_metrics({f"{prefix}.{k}": payload[k] for k in figures})
                tracker.log_metrics({f"{prefix}.{k}": t for k, t in evaluation["timings"].items()})
                tracker.log_artifact(path, "metrics")
                tracker.log_artifact(ranks, "ranks")
    except BaseException:
        if tracker is not None:
            tracker.end("FAILED")
        raise
    if tracker is not None:
        tracker.set_tags({"evaluated": "true", "test_sets": ",".join(sorted({r["test_set"] for r in results.values()}))})
        tracker.end("FINISHED")
    return results


def _summary_line(payload: dict[str, Any]) -> str:
    line = (f"{payload['variant']} on {payload['test_set']} [{payload['language']}]: mR {payload['mR']:.2f} "
            f"(i2t R@1 {payload['i2t_R1']:.2f}, t2i R@1 {payload['t2i_R1']:.2f})")
    if "twin_acc" in payload:
        line += (f"; twin acc {payload['twin_acc']:.2f} (t2i {payload['twin_acc_t2i']:.2f}, "
                 f"i2t {payload['twin_acc_i2t']:.2f}, {payload['twin_pairs']} pairs)")
    return line
