"""End to end: ingest -> dedup -> split -> keywords on a generated synthetic benchmark.

The generator plants near-duplicate copies of ``synth_rsicd`` images inside
``synth_sydney`` (some test images copied into train, some train images into test) and
records them in ``ground_truth.json``; every other pair of images is >= 10 pHash bits
apart. So dedup must find exactly the planted pairs, and split must keep those test
images out of every train set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from rsitr.config import params_from_dict
from rsitr.data.ingest import MANIFEST_COLUMNS
from rsitr.data.dedup import CLUSTER_COLUMNS
from rsitr.app.steps.data import run_dedup, run_ingest, run_split
from rsitr.app.steps.keywords import run_keywords
from rsitr.data.synth import generate_benchmark

N_IMAGES = 120


def _image_id(relpath: str) -> str:
    """``synth_rsicd/synth_rsicd_images/x.jpg`` -> ``synth_rsicd/x.jpg`` (dataset / image key)."""
    parts = relpath.split("/")
    return "/".join([parts[0], *parts[2:]])


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("stages")
    raw = tmp / "raw" / "synth"
    generate_benchmark(raw, n_images=N_IMAGES, seed=3)
    params = params_from_dict(
        {
            "paths": {"data": str(tmp / "data"), "models": str(tmp / "models"), "reports": str(tmp / "reports")},
            "datasets": [
                {
                    "name": "synth_rsicd",
                    "format": "precomp",
                    "root": str(raw / "synth_rsicd"),
                    "images": str(raw / "synth_rsicd" / "synth_rsicd_images"),
                    "languages": ["ar"],
                },
                {
                    "name": "synth_sydney",
                    "format": "karpathy",
                    "root": str(raw / "synth_sydney"),
                    "images": str(raw / "synth_sydney" / "images"),
                    "languages": ["ar"],
                },
            ],
            "dedup": {"max_distance": 2, "workers": 2, "cache": str(tmp / "cache" / "phash.json")},
            "split": {"seed": 0, "ratios": [0.8, 0.1, 0.1]},
            "keywords": {"top_k": 25},
        }
    )
    reports = {
        "ingest": run_ingest(params),
        "dedup": run_dedup(params),
        "split": run_split(params),
        "keywords": run_keywords(params),
    }
    truth = json.loads((raw / "ground_truth.json").read_text(encoding="utf-8"))
    return {"params": params, "data": tmp / "data", "truth": truth, "reports": reports}


def test_ingest_reads_every_caption_in_both_languages(pipeline: dict) -> None:
    manifest = pd.read_parquet(pipeline["data"] / "interim" / "manifest.parquet")
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    summary = pipeline["truth"]["summary"]["datasets"]
    report = pipeline["reports"]["ingest"]
    assert report["rejected"]["rows"] == 0
    for dataset, splits in summary.items():
        for split, counts in splits.items():
            assert report["datasets"][dataset]["splits"][split]["images"] == counts["images"]
            assert report["datasets"][dataset]["splits"][split]["captions"] == 2 * counts["captions"]  # en + ar
    assert set(manifest["language"]) == {"en", "ar"}
    assert manifest["image_id"].nunique() == pipeline["truth"]["summary"]["n_files"]


def test_dedup_recovers_the_planted_pairs_without_false_merges(pipeline: dict) -> None:
    clusters = pd.read_parquet(pipeline["data"] / "interim" / "clusters.parquet")
    assert list(clusters.columns) == list(CLUSTER_COLUMNS)
    assert clusters["image_id"].is_unique
    planted = [(_image_id(p["a"]), _image_id(p["b"])) for p in pipeline["truth"]["near_duplicates"]]
    assert planted, "the benchmark should plant near-duplicates"
    cluster_of = clusters.set_index("image_id")["cluster"]
    found = sum(cluster_of[a] == cluster_of[b] for a, b in planted)
    assert found / len(planted) >= 0.95
    # no false merge: every multi-image cluster is exactly a planted pair
    planted_sets = {frozenset(pair) for pair in planted}
    for _, members in clusters.groupby("cluster")["image_id"]:
        if len(members) > 1:
            assert frozenset(members) in planted_sets
    # representative = the cluster's smallest image_id; phash = the generator's pHash
    assert (clusters.groupby("cluster")["image_id"].transform("min") == clusters["representative"]).all()
    truth_hash = {_image_id(rel): entry["phash"] for rel, entry in pipeline["truth"]["images"].items()}
    assert clusters.set_index("image_id")["phash"].to_dict() == truth_hash
    overlaps = pipeline["reports"]["dedup"]["overlaps"]
    assert overlaps[0]["pairs"] == len(planted)


def test_dedup_rerun_hits_the_content_cache(pipeline: dict) -> None:
    again = run_dedup(pipeline["params"])
    assert again["cache"] == {"hits": pipeline["truth"]["summary"]["n_files"], "misses": 0}
    assert again["n_pairs"] == pipeline["reports"]["dedup"]["n_pairs"]


def test_split_keeps_tests_exact_and_removes_planted_test_copies_from_train(pipeline: dict) -> None:
    data = pipeline["data"]
    processed = pd.read_parquet(data / "processed" / "manifest.parquet")
    removed = pd.read_csv(data / "processed" / "removed.csv")
    ingest = pd.read_parquet(data / "interim" / "manifest.parquet")
    assert (processed.groupby("cluster")["split"].nunique() == 1).all()
    official_test = set(ingest.loc[ingest["official_split"] == "test", "image_id"])
    assert set(processed.loc[processed["split"] == "test", "image_id"]) == official_test
    split_of = processed.drop_duplicates("image_id").set_index("image_id")["split"]
    leaks = [p for p in pipeline["truth"]["near_duplicates"] if "test" in (p["a_split"], p["b_split"])]
    leaks = [p for p in leaks if p["a_split"] != p["b_split"]]
    assert leaks, "the benchmark should plant test images copied into train"
    for pair in leaks:
        trained = _image_id(pair["a"] if pair["a_split"] != "test" else pair["b"])
        assert trained not in split_of.index
        assert trained in set(removed["image_id"])
    assert set(removed["reason"].str.split(" ").str[0]) == {"test"}
    report = pipeline["reports"]["split"]
    assert report["removed"]["images"] == removed["image_id"].nunique()
    assert report["datasets"]["synth_rsicd"]["mode"] == "official+carved_val"
    assert report["datasets"]["synth_rsicd"]["images"]["val"] > 0


def test_keywords_come_from_train_captions_in_both_languages(pipeline: dict) -> None:
    processed = pipeline["data"].parent / "models" / "keywords"
    payload = json.loads((processed / "keywords.json").read_text(encoding="utf-8"))
    assert payload["top_k"] == 25
    assert set(payload["per_dataset"]) == {"synth_rsicd", "synth_sydney"}
    for tables in payload["per_dataset"].values():
        assert set(tables) == {"en", "ar"}
        assert all(0 < len(words) <= 25 for words in tables.values())
    assert (processed / "keywords.txt").read_text(encoding="utf-8").splitlines() == payload["merged"]
    english = (processed / "keywords_en.txt").read_text(encoding="utf-8").splitlines()
    arabic = (processed / "keywords_ar.txt").read_text(encoding="utf-8").splitlines()
    assert english and arabic and set(payload["merged"]) == set(english) | set(arabic)
    assert not {"the", "of", "and", "a"} & set(english)
