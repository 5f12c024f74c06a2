"""Split: train/val/test by near-duplicate cluster, official test sets kept exactly.

Input: the ingest manifest (one row per caption, ``official_split`` per image) and the
dedup cluster table (one near-duplicate ``cluster`` per ``image_id``). Rules, in order:

1. **Official test splits are kept exactly** (RSICD 1093 test images, RSITMD 452, UCM
   210): no test image is moved or removed, so scores stay comparable with the papers.
2. A dataset with official train/test but **no val** gets a val split carved from its
   train images *by cluster*, at ``val / (train + val)`` of the ratios.
3. Images **without an official split** get a seeded ``train/val/test`` split *by
   cluster* at ``ratios`` (80/10/10 by default), so near-duplicates never straddle splits.
   Clusters are shuffled with a generator seeded by ``(seed, crc32(dataset))`` and cut where
   the running image count crosses the ratio boundaries: deterministic, and independent of
   the other datasets.
4. **Leakage removal**: every train or val image whose cluster holds *any* test image of
   *any* dataset is removed. The public benchmarks overlap (RSITMD re-uses RSICD scenes,
   RSICD has internal near-duplicates), so training on one and testing on another would
   otherwise leak test images into training. RemoteCLIP (Liu et al. 2024) and EBAKER
   remove such pHash near-duplicates the same way (see :mod:`rsitr.data.dedup`).
5. A cluster still in both train and val (official splits disagree) moves wholly to train.

Afterwards no cluster lies in two splits (:func:`check_split_invariants`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rsitr.errors import DataError

SPLITS = ("train", "val", "test")
OFFICIAL_SPLIT_NAMES = {
    "train": "train",
    "restval": "train",  # Karpathy's name for val images used in training
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
}
PROCESSED_EXTRA_COLUMNS = ("split", "cluster")
REMOVED_EXTRA_COLUMNS = ("split", "cluster", "reason")

MODE_OFFICIAL = "official"
MODE_CARVED_VAL = "official+carved_val"
MODE_SEEDED = "seeded"
MODE_MIXED = "official+seeded"


@dataclass
class SplitResult:
    """Processed manifest (ingest rows + ``split``, ``cluster``), removed rows, JSON report."""

    manifest: pd.DataFrame
    removed: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- image table


def _official_name(dataset: str, image_id: str, split: Any) -> str | None:
    if split is None or (isinstance(split, float) and np.isnan(split)):
        return None
    name = OFFICIAL_SPLIT_NAMES.get(str(split).strip().lower())
    if name is None:
        valid = ", ".join(sorted(OFFICIAL_SPLIT_NAMES))
        raise DataError(
            f"dataset {dataset!r}: image {image_id!r} has official split {split!r}; expected one of {valid} - "
            "rename the split in the annotation file"
        )
    return name


def image_table(manifest: pd.DataFrame, clusters: pd.DataFrame) -> pd.DataFrame:
    """One row per image: ``image_id, dataset, official (train/val/test/None), cluster``, sorted by image_id."""
    images = manifest[["image_id", "dataset", "official_split"]].drop_duplicates()
    doubled = images["image_id"][images["image_id"].duplicated()]
    if len(doubled):
        raise DataError(
            f"image {doubled.iloc[0]!r} appears under two datasets or official splits in the manifest; "
            "re-run the ingest stage (it rejects such images)"
        )
    table = images.merge(clusters[["image_id", "cluster"]], on="image_id", how="left")
    missing = table["image_id"][table["cluster"].isna()]
    if len(missing):
        raise DataError(
            f"{len(missing)} manifest image(s) have no dedup cluster (first: {missing.iloc[0]!r}); "
            "the cluster table is stale - re-run the dedup stage (dvc repro dedup)"
        )
    table["cluster"] = table["cluster"].astype("int64")
    table["official"] = [
        _official_name(d, i, s) for d, i, s in zip(table["dataset"], table["image_id"], table["official_split"])
    ]
    return table.drop(columns="official_split").sort_values("image_id", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- seeded cluster split


def _rng(seed: int, dataset: str, purpose: str) -> np.random.Generator:
    """Generator seeded by (seed, dataset, purpose): stable across runs and Python versions."""
    return np.random.default_rng([int(seed), zlib.crc32(f"{dataset}:{purpose}".encode("utf-8"))])


def cluster_split(
    clusters: Sequence[int] | np.ndarray, names: Sequence[str], fractions: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Assign each item a name from ``names`` so that whole clusters share one name.

    Distinct cluster ids are shuffled by ``rng``; each cluster gets the name whose cumulative
    ``fractions`` interval holds the midpoint of its run of items. Returns ``[N]`` object array.
    """
    cl = np.asarray(clusters, dtype=np.int64).reshape(-1)  # [N]
    out = np.empty(cl.size, dtype=object)
    if cl.size == 0:
        return out
    unique, inverse, sizes = np.unique(cl, return_inverse=True, return_counts=True)  # [U], [N], [U]
    order = rng.permutation(unique.size)  # [U] shuffled cluster positions
    ends = np.cumsum(sizes[order])  # [U]
    mid = (ends - sizes[order] / 2.0) / cl.size  # [U] midpoint of each cluster's run in [0, 1]
    bounds = np.cumsum(np.asarray(fractions, dtype=np.float64))  # [S]
    which = np.minimum(np.searchsorted(bounds, mid, side="right"), len(names) - 1)  # [U]
    label_of_cluster = np.empty(unique.size, dtype=object)
    label_of_cluster[order] = np.asarray(names, dtype=object)[which]
    out[:] = label_of_cluster[inverse.reshape(-1)]
    return out


def _dataset_mode(official: pd.Series) -> str:
    present = set(official.dropna())
    if not present:
        return MODE_SEEDED
    if official.isna().any():
        return MODE_MIXED
    if "train" in present and "test" in present and "val" not in present:
        return MODE_CARVED_VAL
    return MODE_OFFICIAL


def assign_dataset_splits(images: pd.DataFrame, ratios: Sequence[float], seed: int) -> tuple[pd.Series, dict[str, str]]:
    """Split of every image (rules 1-3 of the module docstring) and each dataset's mode."""
    split = images["official"].copy().astype(object)
    modes: dict[str, str] = {}
    r_train, r_val, _ = (float(r) for r in ratios)
    for dataset, rows in images.groupby("dataset", sort=True):
        mode = modes[str(dataset)] = _dataset_mode(rows["official"])
        unassigned = rows.index[rows["official"].isna()]
        if len(unassigned):
            rng = _rng(seed, str(dataset), "split")
            split.loc[unassigned] = cluster_split(images.loc[unassigned, "cluster"], SPLITS, ratios, rng)
        if mode == MODE_CARVED_VAL and r_val > 0:
            train = rows.index[rows["official"] == "train"]
            val_share = r_val / (r_train + r_val)
            rng = _rng(seed, str(dataset), "val")
            split.loc[train] = cluster_split(images.loc[train, "cluster"], ("train", "val"), (1 - val_share, val_share), rng)
    return split, modes


# --------------------------------------------------------------------------- leakage


def leakage_reasons(images: pd.DataFrame, split: pd.Series) -> pd.Series:
    """For each train/val image whose cluster holds a test image: why it must go (else None)."""
    test = images[split == "test"]
    first_test = test.groupby("cluster")["image_id"].min()  # cluster -> smallest test image_id
    test_dataset = test.set_index("image_id")["dataset"]
    reasons = pd.Series([None] * len(images), index=images.index, dtype=object)
    at_risk = images.index[(split != "test") & images["cluster"].isin(first_test.index)]
    for idx in at_risk:
        cluster = int(images.at[idx, "cluster"])
        witness = first_test[cluster]
        scope = "same dataset" if test_dataset[witness] == images.at[idx, "dataset"] else "cross-dataset"
        reasons.at[idx] = (
            f"test leakage ({scope}): near-duplicate cluster {cluster} holds test image {witness}; "
            f"removed from {split.at[idx]}"
        )
    return reasons


def merge_train_val_straddlers(images: pd.DataFrame, split: pd.Series) -> tuple[pd.Series, pd.Index]:
    """Move val images of clusters that also have train images to train; returns (split, moved index)."""
    train_clusters = set(images.loc[split == "train", "cluster"])
    moved = images.index[(split == "val") & images["cluster"].isin(train_clusters)]
    split = split.copy()
    split.loc[moved] = "train"
    return split, moved


# --------------------------------------------------------------------------- invariants + report


def check_split_invariants(processed: pd.DataFrame, manifest: pd.DataFrame) -> None:
    """Raise DataError unless every cluster lies in one split and official tests are unchanged."""
    per_cluster = processed.groupby("cluster")["split"].nunique()
    straddling = per_cluster[per_cluster > 1]
    if len(straddling):
        raise DataError(
            f"split invariant broken: cluster {int(straddling.index[0])} lies in several splits; "
            "this is a bug in rsitr.data.split - please report it with the manifest"
        )
    official_test = set(manifest.loc[manifest["official_split"] == "test", "image_id"])
    kept_test = set(processed.loc[processed["split"] == "test", "image_id"])
    lost = sorted(official_test - kept_test)
    if lost:
        raise DataError(
            f"split invariant broken: official test image {lost[0]!r} is not in the test split; "
            "this is a bug in rsitr.data.split - please report it with the manifest"
        )


def _count(values: pd.Series) -> dict[str, int]:
    counts = values.value_counts()
    return {name: int(counts.get(name, 0)) for name in SPLITS}


def _train_merged(kept_images: pd.DataFrame) -> dict[str, int]:
    """Near-duplicate training images that training counts as one image (one mask id per cluster).

    ``images``: training images whose cluster holds another training image; ``merged_away``:
    how many fewer distinct images the negatives see (images - clusters among the train set).
    """
    train = kept_images[kept_images["split"] == "train"]
    sizes = train.groupby("cluster")["image_id"].nunique()
    shared = sizes[sizes > 1]
    datasets = train[train["cluster"].isin(shared.index)].groupby("cluster")["dataset"].nunique()
    return {
        "images": int(shared.sum()),
        "clusters": int(len(shared)),
        "merged_away": int(shared.sum() - len(shared)),
        "cross_dataset_clusters": int((datasets > 1).sum()),
    }


def split_report(
    images: pd.DataFrame,
    processed: pd.DataFrame,
    removed: pd.DataFrame,
    removed_images: pd.DataFrame,
    moved: pd.DataFrame,
    modes: dict[str, str],
    ratios: Sequence[float],
    seed: int,
) -> dict[str, Any]:
    """Counts per dataset and split, removals (rows and images) and moves."""
    datasets: dict[str, Any] = {}
    kept_images = processed.drop_duplicates("image_id")
    for dataset in sorted(modes):
        gone = removed_images[removed_images["dataset"] == dataset]
        datasets[dataset] = {
            "mode": modes[dataset],
            "images": _count(kept_images.loc[kept_images["dataset"] == dataset, "split"]),
            "captions": _count(processed.loc[processed["dataset"] == dataset, "split"]),
            "official_test_images": int(((images["dataset"] == dataset) & (images["official"] == "test")).sum()),
            "removed_images": {name: int((gone["split"] == name).sum()) for name in ("train", "val")},
            "removed_rows": int((removed["dataset"] == dataset).sum()),
            "moved_to_train_images": int((moved["dataset"] == dataset).sum()),
        }
    return {
        "seed": int(seed),
        "ratios": [float(r) for r in ratios],
        "images": _count(kept_images["split"]),
        "captions": _count(processed["split"]),
        "removed": {
            "images": int(len(removed_images)),
            "rows": int(len(removed)),
            "clusters": int(removed_images["cluster"].nunique()),
            "cross_dataset_images": int(removed_images["reason"].str.contains("cross-dataset").sum()),
        },
        "moved_to_train": {"images": int(len(moved)), "clusters": int(moved["cluster"].nunique())},
        "train_merged": _train_merged(kept_images),
        "datasets": datasets,
    }


# --------------------------------------------------------------------------- entry


def split_manifest(
    manifest: pd.DataFrame, clusters: pd.DataFrame, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> SplitResult:
    """Apply rules 1-5 of the module docstring to the ingest manifest and the dedup clusters."""
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6 or min(ratios) < 0:
        raise DataError(f"split ratios must be three fractions >= 0 summing to 1 (train, val, test), got {list(ratios)}")
    images = image_table(manifest, clusters)
    split, modes = assign_dataset_splits(images, ratios, seed)
    reasons = leakage_reasons(images, split)
    removed_mask = reasons.notna()
    kept = images[~removed_mask]
    kept_split, moved_index = merge_train_val_straddlers(kept, split[~removed_mask])

    assigned = images.assign(split=split, reason=reasons)
    assigned.loc[kept_split.index, "split"] = kept_split
    removed_images = assigned[removed_mask]
    moved = assigned.loc[moved_index]

    columns = list(manifest.columns)
    rows = manifest.merge(assigned[["image_id", "split", "cluster", "reason"]], on="image_id", how="left", validate="m:1")
    is_removed = rows["reason"].notna()
    processed = rows.loc[~is_removed, columns + list(PROCESSED_EXTRA_COLUMNS)].reset_index(drop=True)
    removed = rows.loc[is_removed, columns + list(REMOVED_EXTRA_COLUMNS)].reset_index(drop=True)
    check_split_invariants(processed, manifest)
    report = split_report(images, processed, removed, removed_images, moved, modes, ratios, seed)
    return SplitResult(processed, removed, report)
