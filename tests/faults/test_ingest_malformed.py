"""Issue 25 (data): malformed annotations through ``rsitr data ingest``, in every format they apply to.

CR-only line endings are read whole; a zero-byte annotation file is an error naming it (never a
dataset without its test split); an image listed twice in one split keeps its first listing
and the second is reported; an absolute or ``..`` image name is refused and nothing outside the
images folder is opened. ``ingest.strict: true`` exits 2 with one line naming the item and the
fix; ``strict: false`` lists each dropped item and split in ``reports/data/ingest.json`` and
as a warning (stderr under the CLI), and keeps the valid rest.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import one_line_error, rsitr


def _png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (shade, 255 - shade, 40)).save(path)


def _caps(name: str) -> list[str]:
    return [f"caption {k} of {name}" for k in range(5)]


def _images(ds: Path) -> Path:
    for i, name in enumerate("abcd"):
        _png(ds / "images" / f"{name}.png", 30 + 50 * i)
    return ds / "images"


def _precomp(ds: Path, test_names: list[str], eol: str = "\n", train_names: list[str] | None = None) -> dict:
    """train: one name per image; test: the name repeated per caption (the RSICD layout)."""
    images = _images(ds)
    train_names = train_names or ["a.png", "b.png"]
    (ds / "train_filename.txt").write_text("".join(f"{n}\n" for n in train_names))
    (ds / "train_caps.txt").write_text("".join(f"{c}\n" for n in train_names for c in _caps(n)))
    (ds / "test_filename.txt").write_bytes("".join(f"{n}{eol}" for n in test_names for _ in range(5)).encode())
    (ds / "test_caps.txt").write_bytes("".join(f"{c}{eol}" for n in test_names for c in _caps(n)).encode())
    return {"name": "alpha", "format": "precomp", "root": str(ds), "images": str(images)}


def _karpathy(ds: Path, entries: list[tuple[str, str]]) -> dict:
    images = _images(ds)
    data = {"images": [{"filename": f, "split": s, "sentences": [{"raw": c} for c in _caps(f)]} for f, s in entries]}
    (ds / "dataset.json").write_text(json.dumps(data))
    return {"name": "alpha", "format": "karpathy", "root": str(ds), "images": str(images)}


def _nwpu(ds: Path, extra: dict[str, list[tuple[str, str]]]) -> dict:
    entries = {"forest": [("f1.png", "train"), ("f2.png", "test")], "lake": [("l1.png", "train"), ("l2.png", "test")]}
    for category, rows in entries.items():
        for k, (name, _) in enumerate(rows):
            _png(ds / category / name, 40 + 90 * k + (category == "lake") * 30)
    for category, rows in extra.items():
        entries[category] = entries.get(category, []) + rows
    data = {c: [{"filename": f, "split": s, "raw": f"{f} one", "raw_1": f"{f} two"} for f, s in rows]
            for c, rows in entries.items()}
    (ds / "dataset_nwpu.json").write_text(json.dumps(data))
    return {"name": "alpha", "format": "nwpu", "root": str(ds), "images": str(ds)}


def _csv(ds: Path, extra: list[tuple[str, str, str]]) -> dict:
    images = _images(ds)
    rows = [(f"{n}.png", c, "train" if n in "ab" else "test") for n in "abcd" for c in _caps(n)] + extra
    (ds / "captions.csv").write_text("filename,title,split\n" + "".join(f"{f},{t},{s}\n" for f, t, s in rows))
    return {"name": "alpha", "format": "csv", "root": str(ds), "images": str(images)}


def _run(tmp: Path, entry: dict, strict: bool, caplog: pytest.LogCaptureFixture):
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"data": str(tmp / "data"), "reports": str(tmp / "reports")},
                                      "datasets": [entry], "ingest": {"strict": strict, "workers": 1}}))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rsitr.data.ingest"):
        done = rsitr("data", "ingest", "--params", str(params))
    warnings = [r.getMessage() for r in caplog.records if r.name == "rsitr.data.ingest"]
    return done, warnings


def _report(tmp: Path) -> dict:
    return json.loads((tmp / "reports" / "data" / "ingest.json").read_text())


def _manifest(tmp: Path) -> pd.DataFrame:
    return pd.read_parquet(tmp / "data" / "interim" / "manifest.parquet")


# --------------------------------------------------------------------------- (a) CR-only line endings


def test_cr_only_test_files_are_read_whole_and_no_reason_reads_nan(tmp_path: Path, caplog) -> None:
    entry = _precomp(tmp_path / "alpha", ["c.png", "d.png"], eol="\r")
    done, warnings = _run(tmp_path, entry, strict=True, caplog=caplog)
    assert done.returncode == 0, done.stderr  # was: the test split dropped as one 'missing image' with CRs in its name
    manifest = _manifest(tmp_path)
    assert manifest.groupby("official_split").size().to_dict() == {"test": 10, "train": 10}
    assert sorted(manifest.loc[manifest["official_split"] == "test", "image_key"].unique()) == ["c.png", "d.png"]
    assert warnings == [] and _report(tmp_path)["rejected"]["rows"] == 0


def test_a_control_character_in_an_image_name_is_one_readable_rejection(tmp_path: Path, caplog) -> None:
    entry = _karpathy(tmp_path / "alpha", [("a.png", "train"), ("c.png", "test"), ("d\r.png", "test")])
    done, warnings = _run(tmp_path, entry, strict=False, caplog=caplog)
    assert done.returncode == 0, done.stderr
    rejected = pd.read_csv(tmp_path / "data" / "interim" / "rejected.csv")
    assert len(rejected) == 1 and rejected["reason"].notna().all()  # was: 'nan' reasons, one row split in two
    assert rejected["reason"][0].startswith("unsafe image path: 'd\\r.png'") and "U+000D" in rejected["reason"][0]
    assert len(warnings) == 1 and "\r" not in warnings[0]


# --------------------------------------------------------------------------- (b) zero-byte annotation files


def _emptied(tmp: Path, format: str) -> tuple[dict, list[Path]]:
    ds = tmp / "alpha"
    if format == "precomp":
        entry = _precomp(ds, ["c.png", "d.png"])
        files = [ds / "test_caps.txt", ds / "test_filename.txt"]
    elif format == "karpathy":
        entry, files = _karpathy(ds, [("a.png", "train")]), [ds / "dataset.json"]
    elif format == "nwpu":
        entry, files = _nwpu(ds, {}), [ds / "dataset_nwpu.json"]
    else:
        entry, files = _csv(ds, []), [ds / "captions.csv"]
    for path in files:
        path.write_bytes(b"")
    return entry, files


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("format", ["precomp", "karpathy", "nwpu", "csv"])
def test_zero_byte_annotation_files_fail_naming_the_file(tmp_path: Path, caplog, format: str, strict: bool) -> None:
    entry, files = _emptied(tmp_path, format)
    done, warnings = _run(tmp_path, entry, strict=strict, caplog=caplog)
    line = one_line_error(done)  # was (precomp): exit 0, a dataset without its test split, no message
    assert str(files[0]) in line and ("empty (0 bytes)" in line or "empty (no lines)" in line)
    assert "restore" in line
    assert any(str(files[0]) in w for w in warnings)
    assert not (tmp_path / "data" / "interim" / "manifest.parquet").exists()


# --------------------------------------------------------------------------- (c) an image listed twice in one split


def _listed_twice(tmp: Path, format: str) -> tuple[dict, str, int]:
    """(dataset entry, the repeated image key, captions the manifest keeps)."""
    ds = tmp / "alpha"
    if format == "precomp":
        return _precomp(ds, ["c.png", "d.png"], train_names=["a.png", "b.png", "a.png"]), "a.png", 20
    if format == "karpathy":
        entries = [("a.png", "train"), ("b.png", "train"), ("c.png", "test"), ("c.png", "test")]
        return _karpathy(ds, entries), "c.png", 15
    return _nwpu(ds, {"lake": [("l2.png", "test")]}), "lake/l2.png", 8


@pytest.mark.parametrize("format", ["precomp", "karpathy", "nwpu"])  # csv: one row per caption, repeats are normal
def test_an_image_listed_twice_in_one_split_is_reported_by_name(tmp_path: Path, caplog, format: str) -> None:
    entry, image, kept = _listed_twice(tmp_path, format)
    done, warnings = _run(tmp_path, entry, strict=False, caplog=caplog)
    assert done.returncode == 0, done.stderr
    manifest = _manifest(tmp_path)
    assert len(manifest) == kept  # was: the two listings merged into one image with twice the captions
    assert manifest.groupby("image_key").size().max() in (2, 5)  # no image gained a second listing's captions
    items = _report(tmp_path)["rejected"]["items"]
    assert len(items) == 1 and items[0]["reason"].startswith(f"duplicate image: {image!r}")
    assert len(warnings) == 1 and repr(image) in warnings[0]

    done, _ = _run(tmp_path, entry, strict=True, caplog=caplog)
    line = one_line_error(done)
    assert f"duplicate image: {image!r}" in line and "list each image once" in line


# --------------------------------------------------------------------------- (d) names outside the images folder


def _escaping(tmp: Path, format: str) -> tuple[dict, Path]:
    ds = tmp / "alpha"
    secret = tmp / "outside" / "secret.png"
    _png(secret, 250)
    names = ["../../outside/secret.png", str(secret)]
    if format == "precomp":
        entry = _precomp(ds, ["c.png", "d.png", *names])
    elif format == "karpathy":
        entry = _karpathy(ds, [("a.png", "train"), ("c.png", "test")] + [(n, "test") for n in names])
    elif format == "nwpu":
        entry = _nwpu(ds, {"lake": [("../../outside/secret.png", "test")], "../outside": [("secret.png", "test")]})
    else:
        entry = _csv(ds, [(n, "a secret", "test") for n in names])
    return entry, secret


@pytest.mark.parametrize("format", ["precomp", "karpathy", "nwpu", "csv"])
def test_image_names_outside_the_images_folder_are_refused_unopened(
    tmp_path: Path, caplog, monkeypatch: pytest.MonkeyPatch, format: str
) -> None:
    entry, secret = _escaping(tmp_path, format)
    from rsitr.data import images

    opened: list[str] = []
    real = images.image_problem
    monkeypatch.setattr(images, "image_problem", lambda path: opened.append(str(path)) or real(path))
    done, warnings = _run(tmp_path, entry, strict=False, caplog=caplog)
    assert done.returncode == 0, done.stderr
    assert opened and not any("secret" in path for path in opened)  # was: secret.png looked up and ingested
    manifest = _manifest(tmp_path)
    assert not manifest["image_path"].str.contains("secret").any()
    items = _report(tmp_path)["rejected"]["items"]
    assert len(items) == 2 and all(i["reason"].startswith("unsafe image path") for i in items)
    assert len(warnings) == 2 and all("relative to the images folder" in w for w in warnings)

    done, _ = _run(tmp_path, entry, strict=True, caplog=caplog)
    line = one_line_error(done)
    assert "unsafe image path" in line and ("'..'" in line or "absolute path" in line)


# --------------------------------------------------------------------------- a split emptied row by row


def test_a_split_whose_every_row_is_refused_is_reported_by_name(tmp_path: Path, caplog) -> None:
    entry = _karpathy(tmp_path / "alpha", [("a.png", "train"), ("c.png", "val"), ("../c.png", "test")])
    done, warnings = _run(tmp_path, entry, strict=False, caplog=caplog)
    assert done.returncode == 0, done.stderr
    report = _report(tmp_path)
    assert report["rejected"]["dropped_splits"] == ["alpha/test"]
    assert set(report["datasets"]["alpha"]["splits"]) == {"train", "val"}
    assert any("alpha/test: dropped split" in w for w in warnings)
