"""Writing the annotation files in the real on-disk formats.

* precomp (RSICD layout, ``synth_rsicd/``): ``<split>_caps.txt`` with 5 lines per
  image; ``train_filename.txt`` with each file name once, ``test_filename.txt``
  with each file name repeated 5 times (one line per caption), exactly like the
  published RSICD files; ``<split>_caps_ar.txt`` line-aligned Arabic captions.
* Karpathy JSON (Sydney-captions layout, ``synth_sydney/dataset.json``), with a
  parallel ``sentences_ar`` list per image.

Text files are UTF-8 with ``\\n`` line ends and a final newline; JSON is written
with sorted keys and fixed separators, so output bytes depend only on content.
"""

from __future__ import annotations

import json
from pathlib import Path

from rsitr.data.synth.captions import tokenize
from rsitr.data.synth.plan import KARPATHY, PRECOMP, PlannedImage

PRECOMP_SPLITS: tuple[str, ...] = ("train", "test")
KARPATHY_DATASET_NAME: str = KARPATHY


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_json(path: Path, payload: object, indent: "int | None" = None) -> None:
    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, indent=indent, separators=separators)
    path.write_text(text + "\n", encoding="utf-8")


def precomp_order(images: list[PlannedImage], split: str) -> list[PlannedImage]:
    """Images of one precomp split in file order (sorted by file name, as RSICD)."""
    return sorted((image for image in images if image.dataset == PRECOMP and image.split == split),
                  key=lambda image: image.filename)


def write_precomp(folder: Path, images: list[PlannedImage], arabic: bool) -> None:
    for split in PRECOMP_SPLITS:
        ordered = precomp_order(images, split)
        repeats = 1 if split == "train" else 5
        write_lines(folder / f"{split}_caps.txt", [c.english for image in ordered for c in image.captions])
        write_lines(folder / f"{split}_filename.txt", [image.filename for image in ordered for _ in range(repeats)])
        if arabic:
            write_lines(folder / f"{split}_caps_ar.txt", [c.arabic for image in ordered for c in image.captions])


def karpathy_order(images: list[PlannedImage]) -> list[PlannedImage]:
    """Karpathy images by imgid (their file names are ``<imgid + 1>.tif``)."""
    return sorted((image for image in images if image.dataset == KARPATHY),
                  key=lambda image: int(image.filename.split(".")[0]))


def _sentences(texts: list[str], imgid: int) -> list[dict[str, object]]:
    return [{"imgid": imgid, "raw": text, "sentid": imgid * 5 + index, "tokens": tokenize(text)}
            for index, text in enumerate(texts)]


def write_karpathy(folder: Path, images: list[PlannedImage], arabic: bool) -> None:
    entries = []
    for imgid, image in enumerate(karpathy_order(images)):
        entry: dict[str, object] = {
            "filename": image.filename,
            "imgid": imgid,
            "sentences": _sentences([c.english for c in image.captions], imgid),
            "sentids": [imgid * 5 + index for index in range(len(image.captions))],
            "split": image.split,
        }
        if arabic:
            entry["sentences_ar"] = _sentences([c.arabic for c in image.captions], imgid)
        entries.append(entry)
    write_json(folder / "dataset.json", {"dataset": KARPATHY_DATASET_NAME, "images": entries})
