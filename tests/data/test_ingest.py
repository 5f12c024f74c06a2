"""Ingest: manifest rows, image verification, rejections, strict mode, parallel languages."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from rsitr.config import params_from_dict
from rsitr.data.ingest import MANIFEST_COLUMNS, REJECTED_COLUMNS, IngestResult, Rejection, ingest_datasets
from rsitr.app.steps.data import run_ingest
from rsitr.errors import DataError


def _png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 255 - shade, 40)).save(path)


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _caps(name: str, n: int = 5) -> list[str]:
    return [f"caption {k} of {name}" for k in range(n)]


@pytest.fixture()
def tiny(tmp_path: Path) -> dict:
    """alpha (precomp): good a.png, missing b.png, corrupt c.png, an empty caption of d.png.
    beta (precomp): train count mismatch (4 caption lines for 1 image), a good test split."""
    alpha, beta = tmp_path / "alpha", tmp_path / "beta"
    _png(alpha / "images" / "a.png", 10)
    (alpha / "images" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    _png(alpha / "images" / "d.png", 90)
    _write(alpha / "train_filename.txt", ["a.png", "b.png", "c.png"])
    _write(alpha / "train_caps.txt", _caps("a") + _caps("b") + _caps("c"))
    _write(alpha / "test_filename.txt", ["d.png"])
    _write(alpha / "test_caps.txt", ["a pond", "", "a pond again", "water", "still water"])
    _png(beta / "images" / "x.png", 200)
    _png(beta / "images" / "y.png", 150)
    _write(beta / "train_filename.txt", ["x.png"])
    _write(beta / "train_caps.txt", _caps("x", 4))
    _write(beta / "test_filename.txt", ["y.png"])
    _write(beta / "test_caps.txt", _caps("y"))
    datasets = [
        {"name": "alpha", "format": "precomp", "root": str(alpha), "images": str(alpha / "images")},
        {"name": "beta", "format": "precomp", "root": str(beta), "images": str(beta / "images")},
    ]
    return {"tmp": tmp_path, "datasets": datasets}


def _params(tmp: Path, datasets: list[dict], strict: bool = False):
    return params_from_dict({"paths": {"data": str(tmp / "data"), "reports": str(tmp / "reports")}, "datasets": datasets,
                             "ingest": {"strict": strict, "workers": 2}})


def test_non_strict_ingests_the_rest_and_rejects_each_fault_with_its_reason(tiny: dict) -> None:
    tmp = tiny["tmp"]
    params = _params(tmp, tiny["datasets"])
    with pytest.raises(DataError, match=r"lost 1 whole split.*beta.*train_caps.txt"):
        run_ingest(params)  # beta's train split would vanish: non-strict ingest still refuses that
    assert not (tmp / "data" / "interim" / "manifest.parquet").exists()
    result = ingest_datasets(params.datasets, workers=2)
    report = result.report

    manifest = result.manifest
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert sorted(manifest["image_id"].unique()) == ["alpha/a.png", "alpha/d.png", "beta/y.png"]
    a_rows = manifest[manifest["image_id"] == "alpha/a.png"]
    assert a_rows["caption_index"].tolist() == [0, 1, 2, 3, 4]
    assert set(a_rows["official_split"]) == {"train"} and set(a_rows["language"]) == {"en"}
    assert a_rows["image_path"].iloc[0] == str(tmp / "alpha" / "images" / "a.png")
    assert len(manifest[manifest["image_id"] == "alpha/d.png"]) == 4  # the empty caption is not a row

    rejected = pd.read_csv(tmp / "data" / "interim" / "rejected.failed.csv")  # the failed run's list
    pd.testing.assert_frame_equal(rejected, result.rejected_frame())
    assert list(rejected.columns) == list(REJECTED_COLUMNS)
    reasons = {(row.dataset, Path(row.item).name): row.reason for row in rejected.itertuples()}
    assert reasons[("alpha", "b.png")].startswith("missing image")
    assert reasons[("alpha", "c.png")].startswith("corrupt image")
    assert "5 captions dropped" in reasons[("alpha", "c.png")]
    assert reasons[("beta", "train_caps.txt")].startswith("unreadable annotation")
    assert "4 caption lines" in reasons[("beta", "train_caps.txt")]
    empty = [r for (ds, item), r in reasons.items() if ds == "alpha" and item.startswith("test_caps.txt")]
    assert len(empty) == 1 and empty[0].startswith("empty caption")
    assert len(rejected) == 4

    assert not (tmp / "reports" / "data" / "ingest.json").exists()
    assert report["rejected"]["by_reason"] == {
        "corrupt image": 1,
        "empty caption": 1,
        "missing image": 1,
        "unreadable annotation": 1,
    }
    assert report["datasets"]["alpha"]["splits"]["train"] == {"images": 1, "captions": 5}
    assert report["datasets"]["beta"] == {
        "images": 1,
        "captions": 5,
        "splits": {"test": {"images": 1, "captions": 5}},
        "languages": {"en": 5},
    }
    assert report["images_checked"] == 5  # a, b, c, d, y (x's split was rejected before)


def test_strict_fails_naming_the_offenders_and_the_fix(tiny: dict) -> None:
    tmp = tiny["tmp"]
    with pytest.raises(DataError) as info:
        run_ingest(_params(tmp, tiny["datasets"], strict=True))
    message = str(info.value)
    for offender in ("b.png", "c.png", "train_caps.txt", "empty caption"):
        assert offender in message
    assert "ingest.strict" in message and "rejected.csv" in message
    assert not (tmp / "data" / "interim" / "manifest.parquet").exists()
    assert (tmp / "data" / "interim" / "rejected.failed.csv").is_file()  # the failed run's list; no output replaced


def test_strict_passes_when_nothing_is_rejected(tiny: dict) -> None:
    tmp = tiny["tmp"]
    report = run_ingest(_params(tmp, [_good_karpathy(tmp, ["ar"])], strict=True))
    assert report["rejected"]["rows"] == 0
    assert report["captions"] == 4


def _good_karpathy(tmp: Path, languages: list[str] | None = None) -> dict:
    root = tmp / "gamma"
    _png(root / "images" / "g.png", 60)
    images = [
        {
            "filename": "g.png",
            "split": "test",
            "sentences": [{"raw": "a green field ."}, {"raw": "grass"}],
            "sentences_ar": [{"raw": "حقل أخضر"}, {"raw": "عشب"}],
        }
    ]
    (root / "dataset_gamma.json").write_text(json.dumps({"images": images}), encoding="utf-8")
    entry = {"name": "gamma", "format": "karpathy", "root": str(root), "images": str(root / "images")}
    if languages is not None:
        entry["languages"] = languages
    return entry


def test_parallel_languages_are_read_only_when_requested(tmp_path: Path) -> None:
    with_ar = ingest_datasets(_params(tmp_path, [_good_karpathy(tmp_path, ["ar"])]).datasets, workers=1).manifest
    assert with_ar.groupby("language").size().to_dict() == {"ar": 2, "en": 2}
    assert with_ar.loc[with_ar["language"] == "ar", "caption"].tolist() == ["حقل أخضر", "عشب"]
    assert set(with_ar["official_split"]) == {"test"}
    english_only = ingest_datasets(_params(tmp_path, [_good_karpathy(tmp_path)]).datasets, workers=1).manifest
    assert set(english_only["language"]) == {"en"}


def test_a_missing_images_folder_is_one_rejection(tmp_path: Path) -> None:
    entry = _good_karpathy(tmp_path)
    entry["images"] = str(tmp_path / "nowhere")
    result = ingest_datasets(_params(tmp_path, [entry]).datasets, workers=1)
    assert len(result.manifest) == 0
    assert [(r.kind, r.item) for r in result.rejections] == [("missing images folder", str(tmp_path / "nowhere"))]
    with pytest.raises(DataError, match="no usable captions"):
        run_ingest(_params(tmp_path, [entry]))


def test_an_image_listed_in_two_splits_stays_in_test_and_is_reported(tmp_path: Path) -> None:
    entry = _good_karpathy(tmp_path)
    annotation = Path(entry["root"]) / "dataset_gamma.json"
    data = json.loads(annotation.read_text(encoding="utf-8"))
    data["images"].append({"filename": "g.png", "split": "train", "sentences": [{"raw": "a field"}], "sentences_ar": [{"raw": "حقل"}]})
    annotation.write_text(json.dumps(data), encoding="utf-8")
    result = ingest_datasets(_params(tmp_path, [entry]).datasets, workers=1)
    assert result.manifest["official_split"].tolist() == ["test", "test"]
    assert [(r.kind, r.item) for r in result.rejections] == [("conflicting splits", "g.png"),
                                                             ("dropped split", "gamma/train")]  # its only image left
    assert "kept in test" in result.rejections[0].reason
    assert result.report["rejected"]["dropped_splits"] == ["gamma/train"]


def test_rejections_are_one_printable_line_and_listed_in_the_report(tmp_path: Path) -> None:
    rejection = Rejection("d", "x\r.png", "missing image", "/a/x\r.png not found\n(1 captions dropped)")
    assert rejection.item == "x\\r.png" and "\n" not in rejection.reason and "\\n" in rejection.reason
    frame = IngestResult(pd.DataFrame(), [rejection]).rejected_frame()
    frame.to_csv(tmp_path / "r.csv", index=False)
    back = pd.read_csv(tmp_path / "r.csv")
    assert back["reason"].tolist() == [rejection.reason] and back["item"].tolist() == ["x\\r.png"]  # was: nan

    report = ingest_datasets(_params(tmp_path, [_good_karpathy(tmp_path)]).datasets, workers=1).report
    assert report["rejected"]["items"] == [] and report["rejected"]["dropped_splits"] == []
