"""Entry points of the DVC data stages: ingest -> dedup -> split -> keywords.

Each ``run_<stage>(params)`` reads its inputs under ``params.paths.data``, writes its
outputs there and returns its small JSON report, also written next to the outputs (DVC
declares those reports as metrics). File contracts, relative to ``<data>``:

ingest
    ``interim/manifest.parquet`` (one row per caption, :data:`rsitr.data.ingest.MANIFEST_COLUMNS`),
    ``interim/rejected.csv`` (dataset, item, reason), ``interim/ingest_report.json``.
dedup
    ``interim/clusters.parquet`` (one row per image: image_id, dataset, image_path, phash as
    16 hex digits, cluster, representative = the cluster's smallest image_id),
    ``interim/dedup_report.json``. pHashes are cached by file content at ``params.dedup.cache``.
split
    ``processed/manifest.parquet`` (ingest rows + ``split``, ``cluster``),
    ``processed/removed.csv`` (rows removed for test leakage, with ``reason``),
    ``processed/split_report.json``.
keywords
    ``processed/keywords.txt`` (merged list), ``processed/keywords_<lang>.txt``,
    ``processed/keywords.json``, ``processed/keywords_report.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsitr.config.schema import RsitrParams
from rsitr.data.dedup import HashStats, compute_hashes, connected_clusters, dedup_report, find_near_duplicate_pairs
from rsitr.data.ingest import check_not_empty, check_strict, ingest_datasets
from rsitr.data.keywords import extract_keywords
from rsitr.data.split import split_manifest
from rsitr.errors import DataError

CLUSTER_COLUMNS = ("image_id", "dataset", "image_path", "phash", "cluster", "representative")


class StagePaths:
    """Every file the data stages read or write, under ``params.paths.data``."""

    def __init__(self, data: str | os.PathLike[str]) -> None:
        self.data = Path(data)
        self.interim = self.data / "interim"
        self.processed = self.data / "processed"
        self.manifest = self.interim / "manifest.parquet"
        self.rejected = self.interim / "rejected.csv"
        self.ingest_report = self.interim / "ingest_report.json"
        self.clusters = self.interim / "clusters.parquet"
        self.dedup_report = self.interim / "dedup_report.json"
        self.split_manifest = self.processed / "manifest.parquet"
        self.removed = self.processed / "removed.csv"
        self.split_report = self.processed / "split_report.json"
        self.keywords = self.processed / "keywords.txt"
        self.keywords_json = self.processed / "keywords.json"
        self.keywords_report = self.processed / "keywords_report.json"

    def keywords_for(self, language: str) -> Path:
        return self.processed / f"keywords_{language}.txt"


def stage_paths(params: RsitrParams) -> StagePaths:
    return StagePaths(params.paths.data)


# --------------------------------------------------------------------------- io helpers


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_table(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def read_table(path: Path, stage: str) -> pd.DataFrame:
    """A stage input; a missing file names the stage that writes it."""
    if not path.is_file():
        raise DataError(f"{path} not found; run the {stage} stage first (dvc repro {stage})")
    return pd.read_parquet(path)


# --------------------------------------------------------------------------- stages


def run_ingest(params: RsitrParams) -> dict[str, Any]:
    """Read and verify every dataset of ``params.datasets`` into ``interim/manifest.parquet``."""
    if not params.datasets:
        raise DataError("params.datasets is empty; add at least one {name, format, root, images} entry to params.yaml")
    paths = stage_paths(params)
    result = ingest_datasets(params.datasets, workers=params.ingest.workers)
    write_table(result.rejected_frame(), paths.rejected)
    write_json(paths.ingest_report, result.report)
    if params.ingest.strict or len(result.manifest) == 0:
        paths.manifest.unlink(missing_ok=True)  # no stale manifest when the stage fails
    if params.ingest.strict:
        check_strict(result, paths.rejected)
    check_not_empty(result, paths.rejected)
    write_table(result.manifest, paths.manifest)
    return result.report


def cluster_table(images: pd.DataFrame, hashes: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per image (``CLUSTER_COLUMNS``) from images sorted by image_id, their hashes and cluster labels."""
    image_ids = images["image_id"].to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "image_id": image_ids,
            "dataset": images["dataset"].to_numpy(dtype=object),
            "image_path": images["image_path"].to_numpy(dtype=object),
            "phash": [f"{int(h):016x}" for h in hashes.tolist()],
            "cluster": labels.astype("int64"),
            "representative": image_ids[labels],
        },
        columns=list(CLUSTER_COLUMNS),
    )


def run_dedup(params: RsitrParams) -> dict[str, Any]:
    """pHash every manifest image, link pairs within ``max_distance`` bits, cluster (union-find)."""
    paths = stage_paths(params)
    manifest = read_table(paths.manifest, "ingest")
    images = manifest[["image_id", "dataset", "image_path"]].drop_duplicates("image_id")
    images = images.sort_values("image_id", kind="stable").reset_index(drop=True)  # smallest index = smallest id
    stats = HashStats()
    hashes = compute_hashes(images["image_path"].tolist(), workers=params.dedup.workers, cache_path=params.dedup.cache, stats=stats)
    pairs = find_near_duplicate_pairs(hashes, params.dedup.max_distance)  # [P, 2]
    labels = connected_clusters(len(images), pairs)  # [N] smallest member index
    table = cluster_table(images, hashes, labels)
    report = {
        "max_distance": params.dedup.max_distance,
        **dedup_report(table["image_id"].tolist(), table["dataset"].tolist(), labels, pairs, hashes),
        "cache": {"hits": stats.hits, "misses": stats.misses},
    }
    write_table(table, paths.clusters)
    write_json(paths.dedup_report, report)
    return report


def run_split(params: RsitrParams) -> dict[str, Any]:
    """Assign train/val/test by cluster and remove test leakage (see :mod:`rsitr.data.split`)."""
    paths = stage_paths(params)
    manifest = read_table(paths.manifest, "ingest")
    clusters = read_table(paths.clusters, "dedup")
    result = split_manifest(manifest, clusters, ratios=params.split.ratios, seed=params.split.seed)
    write_table(result.manifest, paths.split_manifest)
    write_table(result.removed, paths.removed)
    write_json(paths.split_report, result.report)
    return result.report


def run_keywords(params: RsitrParams) -> dict[str, Any]:
    """Top-k train-caption keywords per dataset and language, merged (see :mod:`rsitr.data.keywords`)."""
    paths = stage_paths(params)
    manifest = read_table(paths.split_manifest, "split")
    options = params.keywords
    result = extract_keywords(
        manifest, top_k=options.top_k, min_length=options.min_length, normalize_arabic=options.normalize_arabic
    )
    for stale in paths.processed.glob("keywords_*.txt"):
        stale.unlink()  # languages no longer present must not leave old lists behind
    write_lines(paths.keywords, result.merged)
    for language, words in result.per_language.items():
        write_lines(paths.keywords_for(language), words)
    write_json(paths.keywords_json, result.to_json())
    write_json(paths.keywords_report, result.report)
    return result.report
