"""The inspect report: published counts of the real benchmarks and image problems on fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rsitr.data.inspect import ReadOptions, inspect_dataset

PUBLISHED_PRECOMP_COUNTS = {
    "rsicd_precomp": {"train": (9828, 49140), "test": (1093, 5465)},
    "rsitmd_precomp": {"train": (4291, 21455), "test": (452, 2260)},
    "ucm_precomp": {"train": (1890, 9450), "test": (210, 1050)},
}


def split_counts(report: dict) -> dict[str, tuple[int, int]]:
    return {split: (c["images"], c["captions"]) for split, c in report["splits"].items()}


@pytest.mark.parametrize("folder", sorted(PUBLISHED_PRECOMP_COUNTS))
def test_precomp_counts_match_published(shared_datasets: Path, folder: str):
    report = inspect_dataset("precomp", shared_datasets / folder)
    assert split_counts(report) == PUBLISHED_PRECOMP_COUNTS[folder]
    assert report["images_dir_exists"] is False
    total_images = sum(images for images, _ in PUBLISHED_PRECOMP_COUNTS[folder].values())
    assert report["missing_images"]["count"] == total_images
    assert report["images_in_several_splits"] == 0
    json.dumps(report)


def test_rsitmd_empty_captions_are_visible(shared_datasets: Path):
    report = inspect_dataset("precomp", shared_datasets / "rsitmd_precomp")
    assert report["splits"]["train"]["empty_captions"] == 20
    assert report["captions_per_image"] == {"0": 4, "5": 4739}
    assert report["problem_count"] == 20


def test_sydney_karpathy_counts_and_images(shared_datasets: Path):
    report = inspect_dataset("karpathy", shared_datasets / "sydney_karpathy")
    assert split_counts(report) == {"train": (497, 2485), "val": (58, 290), "test": (58, 290)}
    assert sum(c["captions"] for c in report["splits"].values()) == 3065
    assert report["languages"] == {"en": 3065}
    assert report["images_dir_exists"] is True
    assert report["missing_images"]["count"] == 613 - 9
    assert report["unreadable_images"] == {"count": 0, "examples": []}


@pytest.fixture
def toy_csv(tmp_path: Path) -> Path:
    """CSV dataset: good.jpg decodes, bad.jpg is garbage, gone.jpg is absent."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "good.jpg")
    (images / "bad.jpg").write_bytes(b"\x00garbage" * 20)
    rows = [
        "good.jpg,a farm,en", "good.jpg,A  farm,en", "good.jpg,مزرعة,ar",
        "bad.jpg,a lake,en", "bad.jpg,a pond,en",
        "gone.jpg,a road,en", "gone.jpg,,en",
    ]
    (tmp_path / "toy.csv").write_text("filename,title,language\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path


def test_missing_and_corrupt_images_are_reported(toy_csv: Path):
    report = inspect_dataset("csv", toy_csv)
    assert report["images_dir_exists"] is True
    assert report["missing_images"] == {"count": 1, "examples": ["gone.jpg"]}
    assert report["unreadable_images"]["count"] == 1
    (example,) = report["unreadable_images"]["examples"]
    assert example["image"] == "bad.jpg" and example["reason"].startswith("cannot decode")
    json.dumps(report)


def test_caption_statistics(toy_csv: Path):
    report = inspect_dataset("csv", toy_csv)
    assert report["splits"] == {"all": {"images": 3, "captions": 6, "empty_captions": 1}}
    assert report["languages"] == {"en": 6, "ar": 1}
    assert report["captions_per_image"] == {"1": 1, "2": 2}
    assert report["images_with_duplicate_captions"] == 1  # "a farm" / "A  farm"
    assert [p["item"] for p in report["problems"]] == [f"{toy_csv / 'toy.csv'}:8"]
    assert inspect_dataset("csv", toy_csv, reading=ReadOptions(split="test"))["splits"] == {
        "test": {"images": 3, "captions": 6, "empty_captions": 1}
    }


def test_works_from_annotations_alone(toy_csv: Path):
    report = inspect_dataset("csv", toy_csv, images=toy_csv / "absent")
    assert report["images_dir"] == str(toy_csv / "absent")
    assert report["images_dir_exists"] is False
    assert report["missing_images"]["count"] == 3
    assert report["unreadable_images"]["count"] == 0


def test_existence_only_check_skips_decoding(toy_csv: Path):
    report = inspect_dataset("csv", toy_csv, decode=False)
    assert report["images_decoded"] is False
    assert report["missing_images"]["count"] == 1
    assert report["unreadable_images"]["count"] == 0
