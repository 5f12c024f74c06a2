"""The DVC data stages: ingest -> dedup -> split (``dvc repro``; ``rsitr data <stage>``).

Each ``run_<stage>(params)`` reads exactly the params its ``dvc.yaml`` stage declares (a
test records the keys read and compares them with ``dvc.yaml``), writes its outputs
atomically under ``paths.data`` and its JSON report under ``reports/data/`` (DVC metrics,
committed, so ``dvc metrics show`` / ``dvc metrics diff`` compare data versions). Reports
hold no timings or cache statistics, so the same data gives byte-identical reports.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rsitr.app.core.files import read_table, write_json, write_table
from rsitr.app.core.paths import ProjectPaths
from rsitr.config import RsitrParams
from rsitr.data.dedup import HashStats, cluster_table, compute_hashes, connected_clusters, dedup_report
from rsitr.data.dedup import find_near_duplicate_pairs
from rsitr.data.ingest import check_no_lost_split, check_not_empty, check_strict, ingest_datasets, rejection_summary
from rsitr.data.split import split_manifest
from rsitr.data.synth import BenchmarkOptions, generate_benchmark
from rsitr.data.synth_corpus import CorpusOptions, generate_corpus
from rsitr.errors import DataError

logger = logging.getLogger(__name__)


def run_synth(params: RsitrParams, *, out: str | None = None, images: int | None = None,
              seed: int | None = None) -> dict[str, Any]:
    """Write the embedded synthetic benchmark (``synth`` stage) to ``synth.out``."""
    synth = params.synth
    options = BenchmarkOptions(image_size=tuple(synth.image_size), twin_rate=synth.twin_rate,
                               weak_caption_rate=synth.weak_caption_rate,
                               near_duplicate_rate=synth.near_duplicate_rate,
                               karpathy_share=synth.karpathy_share, test_share=synth.test_share, arabic=synth.arabic)
    return generate_benchmark(Path(out or synth.out), images if images is not None else synth.images,
                              seed if seed is not None else synth.seed, options)


def _warn_unversioned(params: RsitrParams, paths: ProjectPaths) -> None:
    """The ingest stage depends on ``<data>/raw``: a dataset elsewhere changes without DVC noticing."""
    raw = (paths.data / "raw").resolve()
    for dataset in params.datasets:
        root = Path(dataset.root).resolve()
        if raw not in (root, *root.parents):
            logger.warning(f"dataset {dataset.name} lives at {dataset.root}, outside {paths.data / 'raw'}; DVC does "
                  f"not see its changes. Move it there and `dvc add {paths.data / 'raw' / dataset.name}`")


def run_ingest(params: RsitrParams) -> dict[str, Any]:
    """Read and verify every dataset of ``params.datasets`` into ``interim/manifest.parquet``.

    A failing ingest (strict mode, or nothing usable) leaves the previous outputs in place.
    """
    if not params.datasets:
        raise DataError("params.datasets is empty; add at least one {name, format, root, images} entry to params.yaml")
    paths = ProjectPaths.of(params)
    _warn_unversioned(params, paths)
    result = ingest_datasets(params.datasets, workers=params.ingest.workers)
    failed_list = paths.rejected.with_suffix(".failed.csv")  # this run's rejections when it fails
    summary = rejection_summary(result)
    if summary:
        logger.info(f"{summary}; listed in {paths.rejected}")
    try:
        if params.ingest.strict:
            check_strict(result, failed_list)
        check_not_empty(result, failed_list)
        check_no_lost_split(result, failed_list)
    except DataError:
        write_table(result.rejected_frame(), failed_list)
        raise
    failed_list.unlink(missing_ok=True)
    write_table(result.rejected_frame(), paths.rejected)
    write_table(result.manifest, paths.ingest_manifest)
    write_json(paths.data_report("ingest"), result.report)
    return result.report


def run_dedup(params: RsitrParams) -> dict[str, Any]:
    """pHash every manifest image, link pairs within ``max_distance`` bits, cluster them."""
    paths = ProjectPaths.of(params)
    manifest = read_table(paths.ingest_manifest, "ingest")
    images = manifest[["image_id", "dataset", "image_path"]].drop_duplicates("image_id")
    images = images.sort_values("image_id", kind="stable").reset_index(drop=True)  # smallest index = smallest id
    stats = HashStats()
    hashes = compute_hashes(images["image_path"].tolist(), workers=params.dedup.workers,
                            cache_path=params.dedup.cache, stats=stats)  # [N] uint64
    pairs = find_near_duplicate_pairs(hashes, params.dedup.max_distance)  # [P, 2]
    labels = connected_clusters(len(images), pairs)  # [N] smallest member index
    table = cluster_table(images, hashes, labels)
    report = {
        "max_distance": params.dedup.max_distance,
        **dedup_report(table["image_id"].tolist(), table["dataset"].tolist(), labels, pairs, hashes),
    }
    logger.info(f"dedup: pHash cache {stats.hits} hits, {stats.misses} misses")
    write_table(table, paths.clusters)
    write_json(paths.data_report("dedup"), report)  # no cache statistics: the same data, the same report
    return {**report, "cache": {"hits": stats.hits, "misses": stats.misses}}


def run_split(params: RsitrParams) -> dict[str, Any]:
    """Assign train/val/test by cluster and remove test leakage (see :mod:`rsitr.data.split`)."""
    paths = ProjectPaths.of(params)
    manifest = read_table(paths.ingest_manifest, "ingest")
    clusters = read_table(paths.clusters, "dedup")
    result = split_manifest(manifest, clusters, ratios=params.split.ratios, seed=params.split.seed)
    write_table(result.manifest, paths.manifest)
    write_table(result.removed, paths.removed)
    write_json(paths.data_report("split"), result.report)
    return result.report


def run_synth_corpus(params: RsitrParams, *, out: str | None = None, images: int | None = None,
                     seed: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Write the synthetic caption corpus (``synth_corpus`` stage) to ``synth_corpus.out``; returns its report."""
    corpus = params.synth_corpus
    options = CorpusOptions(image_size=tuple(corpus.image_size), wrong_caption_rate=corpus.wrong_caption_rate,
                            noise_word_rate=corpus.noise_word_rate, shard_size=corpus.shard_size,
                            workers=corpus.workers)
    return generate_corpus(Path(out or corpus.out), images if images is not None else corpus.images,
                           seed if seed is not None else corpus.seed, options, progress=progress)


DATA_STAGES = {"synth": run_synth, "ingest": run_ingest, "dedup": run_dedup, "split": run_split,
               "synth_corpus": run_synth_corpus}
