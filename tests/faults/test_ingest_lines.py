"""Trial 6: non-strict ingest rejects only the offending lines, says so, and never loses a split silently.

One non-UTF-8 byte costs one caption line (named ``file:line``), with the count on stderr and
exit 0; one missing caption line empties a split, which exits non-zero naming the first image
where file names and captions disagree; a failed ingest leaves the previous outputs in place.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import yaml
from PIL import Image

from conftest import rsitr


def _dataset(root: Path) -> Path:
    images = root / "images"
    images.mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        Image.new("RGB", (8, 8), (len(name) * 40, 90, 10)).save(images / name)
    (root / "train_filename.txt").write_text("a.png\nb.png\n")
    (root / "train_caps.txt").write_text("".join(f"caption {k} of {n}\n" for n in "ab" for k in range(5)))
    (root / "test_filename.txt").write_text("".join(f"{n}.png\n" for n in "cd" for _ in range(5)))
    (root / "test_caps.txt").write_text("".join(f"caption {k} of {n}\n" for n in "cd" for k in range(5)))
    return root


def _params(root: Path, dataset: Path) -> Path:
    raw = {"paths": {"data": str(root / "data"), "reports": str(root / "reports")},
           "datasets": [{"name": "alpha", "format": "precomp", "root": str(dataset), "images": str(dataset / "images")}]}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_bad_byte_costs_one_line_and_a_missing_line_fails_loudly(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path / "alpha")
    params = _params(tmp_path, dataset)
    caps = dataset / "train_caps.txt"
    caps.write_bytes(caps.read_bytes().replace(b"caption 2 of a", b"caption 2 of \xff a"))
    done = rsitr("data", "ingest", "--params", str(params))
    assert done.returncode == 0, done.stderr
    assert "ingest: rejected 1 item(s)" in done.stderr
    manifest_path = tmp_path / "data" / "interim" / "manifest.parquet"
    manifest = pd.read_parquet(manifest_path)
    assert len(manifest) == 19 and set(manifest["official_split"]) == {"train", "test"}
    rejected = pd.read_csv(tmp_path / "data" / "interim" / "rejected.csv")
    assert rejected["item"].tolist() == [f"{caps}:3"] and "not UTF-8" in rejected["reason"][0]
    before = hashlib.sha256(manifest_path.read_bytes()).hexdigest()

    names = dataset / "test_filename.txt"
    names.write_text(names.read_text().replace("d.png\n", "", 1))  # d has 4 name lines, 5 captions
    failed = rsitr("data", "ingest", "--params", str(params))
    assert failed.returncode == 2
    errors = [line for line in failed.stderr.splitlines() if line.startswith("rsitr: error")]
    assert len(errors) == 1 and "lost 1 whole split" in errors[0] and "'d.png'" in errors[0]
    assert hashlib.sha256(manifest_path.read_bytes()).hexdigest() == before  # the good outputs stay
