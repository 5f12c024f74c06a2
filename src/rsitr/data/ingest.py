"""Ingest: every configured benchmark into one caption manifest, nothing dropped silently.

One row per caption (``MANIFEST_COLUMNS``): the dataset, ``image_id`` (``"<dataset>/<image
key>"``, unique across datasets), the image key and path, the caption, its language, the
official split (``None`` where the annotation has none) and the caption index.

Every image is opened *and decoded* (:func:`rsitr.data.images.verify_images`, parallel
threads), because a truncated JPEG only fails when its pixels are read. Whatever cannot be
used becomes a row of the rejection table (``REJECTED_COLUMNS``: dataset, item, reason)
instead of disappearing:

* a missing or corrupt image (all its captions leave the manifest),
* an empty caption or another item the reader dropped (:class:`rsitr.data.formats.Problem`),
* an annotation file the reader cannot pair up (e.g. a caption/file-name count mismatch,
  raised as :class:`~rsitr.errors.DataError`): that file is rejected, the other splits of
  a precomp folder and the other datasets are kept,
* an image listed under two official splits, or twice in one split (``duplicate image``),
* an image name that is absolute or climbs out with ``..`` (``unsafe image path``: never opened),
* an official split whose every caption was rejected (``dropped split``, named by dataset/split).

Each reason starts with a short kind (``missing image``, ``corrupt image`` ...), so the
report counts rejections by kind, and lists each one (``rejected.items``) with the dropped
splits (``rejected.dropped_splits``); each is also a warning line on stderr (logger
``rsitr.data.ingest``). Items and reasons are one printable line (control characters are
escaped), so the rejection table reads back as written. With ``strict=True`` any rejection
fails the stage (:func:`check_strict`), naming the first offenders and the fix.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from rsitr.config.schema import DatasetParams
from rsitr.data.formats import PRECOMP_SPLIT_ORDER, CaptionRecord, Problem, read_dataset
from rsitr.data.formats import DUPLICATE_IMAGE, UNSAFE_PATH
from rsitr.data.images import MISSING_FILE, verify_images
from rsitr.errors import DataError

MANIFEST_COLUMNS = (
    "dataset",
    "image_id",
    "image_key",
    "image_path",
    "caption",
    "language",
    "official_split",
    "caption_index",
)
REJECTED_COLUMNS = ("dataset", "item", "reason")

MISSING_IMAGE = "missing image"
CORRUPT_IMAGE = "corrupt image"
EMPTY_CAPTION = "empty caption"
UNREADABLE_ANNOTATION = "unreadable annotation"
ANNOTATION_PROBLEM = "annotation problem"
CONFLICTING_SPLITS = "conflicting splits"
MISSING_IMAGES_FOLDER = "missing images folder"
DROPPED_SPLIT = "dropped split"
PROBLEM_KINDS = (DUPLICATE_IMAGE, UNSAFE_PATH)  # reader problems that carry their own kind

SPLIT_PRIORITY = ("test", "train", "val")  # which official split an image listed twice keeps
NO_SPLIT = "none"  # report key for captions without an official split
STRICT_SHOWN = 5  # offenders named in the strict-mode error

logger = logging.getLogger(__name__)


def printable(text: str) -> str:
    """``text`` on one line: control characters (CR, LF, NUL, ...) written as ``\\r``-style escapes."""
    if not any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in text):
        return text
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char
        for char in text
    )


@dataclass(frozen=True)
class Rejection:
    """One rejected item: ``kind`` is the short category, ``detail`` what is wrong and the fix."""

    dataset: str
    item: str
    kind: str
    detail: str

    def __post_init__(self) -> None:  # one printable line each, so CSV, JSON and stderr show what was meant
        object.__setattr__(self, "item", printable(self.item) or "(unnamed)")
        object.__setattr__(self, "detail", printable(self.detail) or "(no detail)")

    @property
    def reason(self) -> str:
        return self.detail if self.detail.startswith(self.kind) else f"{self.kind}: {self.detail}"


@dataclass
class IngestResult:
    """The manifest rows, the rejections and the JSON report of one ingest run."""

    manifest: pd.DataFrame
    rejections: list[Rejection] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    def rejected_frame(self) -> pd.DataFrame:
        rows = [(r.dataset, r.item, r.reason) for r in self.rejections]
        return pd.DataFrame(rows, columns=list(REJECTED_COLUMNS))


# --------------------------------------------------------------------------- reading


def _problem_rejection(problem: Problem) -> Rejection:
    reason = problem.reason
    if problem.kind in PROBLEM_KINDS:
        kind = problem.kind
    elif reason.startswith(EMPTY_CAPTION) or "not text" in reason:
        kind = EMPTY_CAPTION
    else:
        kind = ANNOTATION_PROBLEM
    return Rejection(problem.dataset, problem.item, kind, reason)


def _precomp_split_names(root: Path) -> list[str]:
    """Splits of a precomp folder in the reader's order (train, val, test, then others)."""
    found = {path.name[: -len("_caps.txt")] for path in root.glob("*_caps.txt")}
    return [s for s in PRECOMP_SPLIT_ORDER if s in found] + sorted(found.difference(PRECOMP_SPLIT_ORDER))


@dataclass
class DatasetRead:
    """What one configured dataset yielded: usable records, rejections, its images folder."""

    records: list[CaptionRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    images_dir: str = ""
    splits: list[str | None] = field(default_factory=list)  # every split the annotation declares


def _read_one(dataset: DatasetParams, split: str | None = None) -> DatasetRead:
    result = read_dataset(
        dataset.format,
        dataset.root,
        dataset.images,
        name=dataset.name,
        language=dataset.language,
        languages=dataset.languages,
        split=split,
    )
    wanted = {dataset.language, *dataset.languages}  # readers pick up every parallel file when languages is empty
    records = [record for record in result.records if record.language in wanted]
    rejections = [_problem_rejection(problem) for problem in result.problems]
    return DatasetRead(records, rejections, result.images_dir, result.declared_splits)


def read_dataset_records(dataset: DatasetParams) -> DatasetRead:
    """Caption records of one configured dataset plus its rejections; never raises DataError.

    A reader error rejects the dataset's annotation. For a precomp folder each split is
    then read alone, so a count mismatch in ``test_*`` costs only the test split. An
    annotation that declares no caption at all (``"images": []``, a header-only CSV) is
    rejected as unreadable too: the dataset would vanish.
    """
    try:
        read = _read_one(dataset)
    except DataError as whole:
        return _read_split_by_split(dataset, whole)
    if not read.splits and not read.records and not read.rejections:
        detail = (f"the annotation in {dataset.root} lists no captions, so dataset {dataset.name!r} would vanish; "
                  "restore it from the download or remove the dataset from params.yaml")
        read.rejections.append(Rejection(dataset.name, str(dataset.root), UNREADABLE_ANNOTATION, detail))
    return read


def _read_split_by_split(dataset: DatasetParams, whole: DataError) -> DatasetRead:
    """After a reader error: each split of a precomp folder alone, the unreadable ones rejected."""
    root = Path(dataset.root)
    splits = _precomp_split_names(root) if dataset.format == "precomp" and root.is_dir() else []
    if len(splits) < 2:
        return DatasetRead(rejections=[Rejection(dataset.name, str(root), UNREADABLE_ANNOTATION, str(whole))])
    merged = DatasetRead()
    for split in splits:
        try:
            part = _read_one(dataset, split)
        except DataError as exc:
            merged.rejections.append(Rejection(dataset.name, str(root / f"{split}_caps.txt"), UNREADABLE_ANNOTATION, str(exc)))
            continue
        merged.records.extend(part.records)
        merged.rejections.extend(part.rejections)
        merged.images_dir = part.images_dir
        merged.splits.extend(part.splits)
    return merged


# --------------------------------------------------------------------------- checks


def _images_folder_rejection(dataset: str, read: DatasetRead) -> Rejection | None:
    """A whole missing images folder is one rejection, not one per image."""
    if not read.records or not read.images_dir or Path(read.images_dir).is_dir():
        return None
    return Rejection(
        dataset,
        read.images_dir,
        MISSING_IMAGES_FOLDER,
        f"{read.images_dir} does not exist ({len(read.records)} captions dropped); set datasets[].images "
        f"of {dataset!r} to the folder holding its images",
    )


def _image_rejections(records: list[CaptionRecord], workers: int) -> tuple[set[tuple[str, str]], list[Rejection]]:
    """Decode every distinct image; (dataset, image_key) of the bad ones and their rejections."""
    problems = verify_images([record.image_path for record in records], workers=workers)
    captions: Counter[tuple[str, str, str]] = Counter((r.dataset, r.image_key, r.image_path) for r in records)
    bad: set[tuple[str, str]] = set()
    rejections: list[Rejection] = []
    for (dataset, image_key, path), n_captions in captions.items():
        problem = problems[path]
        if problem is None:
            continue
        bad.add((dataset, image_key))
        if problem == MISSING_FILE:
            detail = f"{path} not found ({n_captions} captions dropped); restore the file or fix the images folder"
            rejections.append(Rejection(dataset, path, MISSING_IMAGE, detail))
        else:
            detail = f"{path}: {problem} ({n_captions} captions dropped); re-download the file or remove it"
            rejections.append(Rejection(dataset, path, CORRUPT_IMAGE, detail))
    return bad, rejections


def _split_conflicts(records: list[CaptionRecord]) -> tuple[set[tuple[str, str, str]], list[Rejection]]:
    """Images annotated under two official splits keep one (test first, so test sets stay whole).

    Returns the (dataset, image_key, split) whose captions are dropped, and their rejections.
    """
    splits: dict[tuple[str, str], dict[str, None]] = defaultdict(dict)
    for record in records:
        splits[(record.dataset, record.image_key)][str(record.split)] = None
    dropped: set[tuple[str, str, str]] = set()
    rejections: list[Rejection] = []
    for (dataset, image_key), names in splits.items():
        if len(names) < 2:
            continue
        keep = next((name for name in SPLIT_PRIORITY if name in names), next(iter(names)))
        others = [name for name in names if name != keep]
        dropped.update((dataset, image_key, name) for name in others)
        detail = (
            f"image is listed in splits {', '.join(sorted(names))}; kept in {keep}, its {', '.join(others)} "
            "captions dropped - list it in one split only"
        )
        rejections.append(Rejection(dataset, image_key, CONFLICTING_SPLITS, detail))
    return dropped, rejections


# --------------------------------------------------------------------------- manifest + report


def records_frame(records: Sequence[CaptionRecord]) -> pd.DataFrame:
    """Manifest rows (``MANIFEST_COLUMNS``) of caption records, in record order."""
    rows = [
        (r.dataset, f"{r.dataset}/{r.image_key}", r.image_key, r.image_path, r.caption, r.language, r.split, r.caption_index)
        for r in records
    ]
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    frame["caption_index"] = frame["caption_index"].astype("int64")
    frame["official_split"] = frame["official_split"].astype(object)
    return frame


def _dropped_splits(declared: dict[str, list[str | None]], kept: Sequence[CaptionRecord]) -> list[Rejection]:
    """Declared official splits with no caption left in the manifest, one rejection each."""
    present = {(r.dataset, r.split) for r in kept}
    return [
        Rejection(dataset, f"{dataset}/{split if split is not None else NO_SPLIT}", DROPPED_SPLIT,
                  f"every caption of split {split!r} of dataset {dataset!r} was rejected (see the items above); "
                  "fix those items or the split is missing from the manifest")
        for dataset, splits in declared.items()
        for split in dict.fromkeys(splits)
        if (dataset, split) not in present
    ]


def ingest_report(manifest: pd.DataFrame, rejections: Sequence[Rejection], images_checked: int) -> dict[str, Any]:
    """Counts per dataset, official split and language; rejections by kind and dataset, and each by name."""
    datasets: dict[str, Any] = {}
    for name, rows in manifest.groupby("dataset", sort=False):
        split_key = rows["official_split"].fillna(NO_SPLIT)
        datasets[str(name)] = {
            "images": int(rows["image_id"].nunique()),
            "captions": int(len(rows)),
            "splits": {
                str(split): {"images": int(part["image_id"].nunique()), "captions": int(len(part))}
                for split, part in rows.groupby(split_key, sort=True)
            },
            "languages": {str(lang): int(n) for lang, n in rows["language"].value_counts().sort_index().items()},
        }
    return {
        "images": int(manifest["image_id"].nunique()),
        "captions": int(len(manifest)),
        "images_checked": int(images_checked),
        "datasets": datasets,
        "rejected": {
            "rows": len(rejections),
            "by_reason": dict(sorted(Counter(r.kind for r in rejections).items())),
            "by_dataset": dict(sorted(Counter(r.dataset for r in rejections).items())),
            "dropped_splits": [r.item for r in rejections if r.kind == DROPPED_SPLIT],
            "items": [{"dataset": r.dataset, "item": r.item, "reason": r.reason} for r in rejections],
        },
    }


def log_rejections(rejections: Sequence[Rejection]) -> None:
    """One warning line per rejected item or split (stderr under the ``rsitr`` CLI)."""
    for r in rejections:
        logger.warning("ingest: %s: %s: %s", r.dataset, r.item, r.reason)


def ingest_datasets(datasets: Sequence[DatasetParams], workers: int = 2) -> IngestResult:
    """Read, verify and tabulate every dataset; all faults become rejections (see module doc)."""
    records: list[CaptionRecord] = []
    rejections: list[Rejection] = []
    declared: dict[str, list[str | None]] = {}
    for dataset in datasets:
        read = read_dataset_records(dataset)
        rejections.extend(read.rejections)
        folder = _images_folder_rejection(dataset.name, read)
        if folder is not None:
            rejections.append(folder)
            continue
        records.extend(read.records)
        declared[dataset.name] = read.splits
    bad_images, image_rejections = _image_rejections(records, workers)
    conflicts, conflict_rejections = _split_conflicts(records)
    rejections.extend(image_rejections + conflict_rejections)
    kept = [
        r for r in records if (r.dataset, r.image_key) not in bad_images and (r.dataset, r.image_key, str(r.split)) not in conflicts
    ]
    rejections.extend(_dropped_splits(declared, kept))
    log_rejections(rejections)
    manifest = records_frame(kept)
    checked = len({r.image_path for r in records})
    return IngestResult(manifest, rejections, ingest_report(manifest, rejections, checked))


def check_strict(result: IngestResult, rejected_path: str | os.PathLike[str] | None = None) -> None:
    """Raise DataError naming the first rejections (``ingest.strict: true``)."""
    if not result.rejections:
        return
    shown = "; ".join(f"{r.dataset}: {r.item}: {r.reason}" for r in result.rejections[:STRICT_SHOWN])
    more = len(result.rejections) - STRICT_SHOWN
    listing = f" (all listed in {rejected_path})" if rejected_path else ""
    raise DataError(
        f"ingest rejected {len(result.rejections)} item(s) with ingest.strict: true{listing}: {shown}"
        + (f"; and {more} more" if more > 0 else "")
        + ". Fix: restore or re-download the missing/corrupt images and repair the annotation files, "
        "or set ingest.strict: false (--set ingest.strict=false) to ingest the rest and keep the list in rejected.csv"
    )


def check_no_lost_split(result: IngestResult, rejected_path: str | os.PathLike[str]) -> None:
    """Raise DataError when an annotation file could not be read at all: a whole split (or
    dataset) would silently vanish from training or testing, even in non-strict mode."""
    lost = [r for r in result.rejections if r.kind == UNREADABLE_ANNOTATION]
    if lost:
        first = lost[0]
        raise DataError(f"ingest lost {len(lost)} whole split(s) or dataset(s) (listed in {rejected_path}); first: "
                        f"{first.dataset}: {first.item}: {first.detail}")


def rejection_summary(result: IngestResult) -> str:
    """``ingest: rejected N items (kind: n, ...)`` for stderr, or an empty string."""
    if not result.rejections:
        return ""
    kinds = Counter(r.kind for r in result.rejections)
    listing = ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items()))
    return f"ingest: rejected {len(result.rejections)} item(s) ({listing})"


def check_not_empty(result: IngestResult, rejected_path: str | os.PathLike[str]) -> None:
    """Raise DataError when no caption survived (every dataset unreadable or empty)."""
    if len(result.manifest) == 0:
        first = f"; first: {result.rejections[0].dataset}: {result.rejections[0].item}: {result.rejections[0].reason}"
        raise DataError(
            f"ingest found no usable captions in the configured datasets ({len(result.rejections)} rejections, "
            f"listed in {rejected_path}{first if result.rejections else ''}); check the datasets: entries of "
            "params.yaml (root, images, format)"
        )
