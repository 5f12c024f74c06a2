"""Split: official tests exact, seeded split by cluster, leakage removal, no cluster in two splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rsitr.data.ingest import MANIFEST_COLUMNS
from rsitr.data.split import check_split_invariants, cluster_split, split_manifest
from rsitr.errors import DataError


def _manifest(images: list[tuple[str, str, str | None]], captions: int = 2) -> pd.DataFrame:
    """Ingest-style rows: ``captions`` English captions per (dataset, key, official split)."""
    rows = [
        (dataset, f"{dataset}/{key}", key, f"/img/{dataset}/{key}", f"caption {k} of {key}", "en", split, k)
        for dataset, key, split in images
        for k in range(captions)
    ]
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))


def _clusters(manifest: pd.DataFrame, groups: list[list[str]] = ()) -> pd.DataFrame:
    """Every image its own cluster except ``groups`` (lists of image_ids) which are merged."""
    ids = sorted(manifest["image_id"].unique())
    index = {image_id: i for i, image_id in enumerate(ids)}
    cluster = list(range(len(ids)))
    for group in groups:
        root = min(index[g] for g in group)
        for member in group:
            cluster[index[member]] = root
    return pd.DataFrame({"image_id": ids, "cluster": cluster})


def _benchmark() -> tuple[pd.DataFrame, pd.DataFrame]:
    """rsicd: official train/val/test; rsitmd: official train/test (no val); sydney: no splits."""
    images = [("rsicd", f"r{i:02d}.jpg", "train") for i in range(12)]
    images += [("rsicd", f"v{i}.jpg", "val") for i in range(3)] + [("rsicd", f"t{i}.jpg", "test") for i in range(4)]
    images += [("rsitmd", f"m{i:02d}.tif", "train") for i in range(18)] + [("rsitmd", f"mt{i}.tif", "test") for i in range(3)]
    images += [("sydney", f"s{i:02d}.tif", None) for i in range(30)]
    manifest = _manifest(images)
    groups = [
        ["rsicd/t0.jpg", "rsitmd/m00.tif"],  # RSITMD train re-uses an RSICD test scene
        ["rsicd/t1.jpg", "rsicd/r00.jpg"],  # RSICD's own train/test near-duplicate
        ["rsicd/r01.jpg", "rsicd/v0.jpg"],  # official train and val disagree
        ["rsitmd/mt0.tif", "sydney/s00.tif", "sydney/s01.tif"],  # seeded images near an official test image
        ["sydney/s02.tif", "sydney/s03.tif", "sydney/s04.tif"],  # a seeded cluster must stay whole
    ]
    return manifest, _clusters(manifest, groups)


def _split_of(processed: pd.DataFrame) -> dict[str, str]:
    return processed.drop_duplicates("image_id").set_index("image_id")["split"].to_dict()


def test_no_cluster_lies_in_two_splits_and_official_tests_are_exact() -> None:
    manifest, clusters = _benchmark()
    result = split_manifest(manifest, clusters, ratios=(0.8, 0.1, 0.1), seed=0)
    processed = result.manifest
    assert list(processed.columns) == [*MANIFEST_COLUMNS, "split", "cluster"]
    assert (processed.groupby("cluster")["split"].nunique() == 1).all()
    assert set(processed["split"]) == {"train", "val", "test"}
    for dataset in ("rsicd", "rsitmd"):
        official = set(manifest.loc[(manifest["dataset"] == dataset) & (manifest["official_split"] == "test"), "image_id"])
        kept = set(processed.loc[(processed["dataset"] == dataset) & (processed["split"] == "test"), "image_id"])
        assert kept == official
    assert len(processed[processed["image_id"] == "rsicd/t0.jpg"]) == 2  # every caption row of a test image kept
    assert result.report["datasets"]["rsicd"]["official_test_images"] == 4
    # every ingest row is either processed or removed, never both, never lost
    assert len(processed) + len(result.removed) == len(manifest)
    assert not set(processed["image_id"]) & set(result.removed["image_id"])


def test_near_duplicate_of_a_test_image_is_removed_from_train_even_across_datasets() -> None:
    manifest, clusters = _benchmark()
    result = split_manifest(manifest, clusters, seed=0)
    removed = result.removed.drop_duplicates("image_id").set_index("image_id")
    assert "rsitmd/m00.tif" not in set(result.manifest["image_id"])
    assert "rsicd/r00.jpg" not in set(result.manifest["image_id"])
    assert "cross-dataset" in removed.at["rsitmd/m00.tif", "reason"] and "rsicd/t0.jpg" in removed.at["rsitmd/m00.tif", "reason"]
    assert "same dataset" in removed.at["rsicd/r00.jpg", "reason"]
    assert len(result.removed[result.removed["image_id"] == "rsitmd/m00.tif"]) == 2  # both caption rows listed
    # the seeded sydney images next to rsitmd's test image cannot sit in train or val
    split = _split_of(result.manifest)
    for image_id in ("sydney/s00.tif", "sydney/s01.tif"):
        assert split.get(image_id, "removed") in ("test", "removed")
    report = result.report
    assert report["datasets"]["rsitmd"]["removed_images"]["train"] + report["datasets"]["rsitmd"]["removed_images"]["val"] == 1
    assert report["datasets"]["rsitmd"]["removed_rows"] == 2
    assert report["removed"]["images"] == len(removed)
    assert report["removed"]["cross_dataset_images"] >= 1


def test_a_cluster_in_official_train_and_val_moves_wholly_to_train() -> None:
    manifest, clusters = _benchmark()
    result = split_manifest(manifest, clusters, seed=0)
    split = _split_of(result.manifest)
    assert split["rsicd/r01.jpg"] == split["rsicd/v0.jpg"] == "train"
    assert split["rsicd/v1.jpg"] == "val"  # untouched official val
    assert result.report["datasets"]["rsicd"]["moved_to_train_images"] == 1
    assert result.report["datasets"]["rsicd"]["mode"] == "official"


def test_val_is_carved_from_official_train_by_cluster_when_there_is_none() -> None:
    manifest, clusters = _benchmark()
    result = split_manifest(manifest, clusters, ratios=(0.6, 0.3, 0.1), seed=0)
    rsitmd = result.report["datasets"]["rsitmd"]
    assert rsitmd["mode"] == "official+carved_val"
    assert rsitmd["images"]["test"] == 3
    # 17 official train images survive leakage removal; val share 0.3 / 0.9 = 1/3
    assert rsitmd["images"]["train"] + rsitmd["images"]["val"] == 17
    assert 4 <= rsitmd["images"]["val"] <= 7


def test_seeded_split_is_deterministic_by_cluster_and_follows_the_ratios() -> None:
    images = [("sydney", f"s{i:03d}.tif", None) for i in range(200)]
    manifest = _manifest(images, captions=1)
    groups = [[f"sydney/s{i:03d}.tif" for i in range(k, k + 4)] for k in range(0, 40, 4)]  # ten clusters of 4
    clusters = _clusters(manifest, groups)
    first = _split_of(split_manifest(manifest, clusters, seed=7).manifest)
    again = _split_of(split_manifest(manifest, clusters, seed=7).manifest)
    other = _split_of(split_manifest(manifest, clusters, seed=8).manifest)
    assert first == again
    assert first != other
    counts = pd.Series(first).value_counts().to_dict()
    assert 150 <= counts["train"] <= 170 and 12 <= counts["val"] <= 28 and 12 <= counts["test"] <= 28
    for group in groups:
        assert len({first[image_id] for image_id in group}) == 1


def test_cluster_split_cuts_singletons_exactly_at_the_ratios() -> None:
    labels = cluster_split(np.arange(10), ("train", "val", "test"), (0.8, 0.1, 0.1), np.random.default_rng(0))
    assert sorted(pd.Series(labels).value_counts().items()) == [("test", 1), ("train", 8), ("val", 1)]
    merged = cluster_split(np.array([3, 3, 3, 5]), ("a", "b"), (0.5, 0.5), np.random.default_rng(1))
    assert merged[0] == merged[1] == merged[2]


def test_a_stale_cluster_table_is_an_error_naming_the_fix() -> None:
    manifest, clusters = _benchmark()
    with pytest.raises(DataError, match="re-run the dedup stage"):
        split_manifest(manifest, clusters[clusters["image_id"] != "rsicd/t3.jpg"])


def test_an_unknown_official_split_name_is_an_error() -> None:
    manifest = _manifest([("x", "a.jpg", "holdout")])
    with pytest.raises(DataError, match="'holdout'"):
        split_manifest(manifest, _clusters(manifest))


def test_invariant_check_catches_a_straddling_cluster() -> None:
    manifest, clusters = _benchmark()
    processed = split_manifest(manifest, clusters, seed=0).manifest.copy()
    row = processed.index[processed["image_id"] == "rsicd/v1.jpg"][0]
    processed.loc[row, "cluster"] = int(processed.loc[processed["image_id"] == "rsicd/r05.jpg", "cluster"].iloc[0])
    with pytest.raises(DataError, match="several splits"):
        check_split_invariants(processed, manifest)


def test_report_counts_the_training_images_merged_as_one() -> None:
    images = [("rsicd", f"r{i}.jpg", "train") for i in range(6)] + [("rsitmd", f"m{i}.tif", "train") for i in range(6)]
    images += [("rsicd", "t0.jpg", "test"), ("rsitmd", "mt0.tif", "test")]
    manifest = _manifest(images)
    groups = [["rsicd/r0.jpg", "rsitmd/m0.tif"],  # the same scene in both training sets
              ["rsicd/r1.jpg", "rsitmd/m1.tif", "rsitmd/m2.tif"],
              ["rsicd/r2.jpg", "rsicd/r3.jpg"]]  # within one dataset
    result = split_manifest(manifest, _clusters(manifest, groups), seed=0)
    assert _split_of(result.manifest)["rsitmd/m0.tif"] == "train"
    assert result.report["train_merged"] == {"images": 7, "clusters": 3, "merged_away": 4, "cross_dataset_clusters": 2}
