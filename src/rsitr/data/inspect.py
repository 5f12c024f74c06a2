"""The ``inspect`` report: what a dataset folder holds and what is wrong with it.

The report is a JSON-able dict. Counts per split are what the annotation *declares*
(empty captions included, reported separately as ``empty_captions``), so they match
the published figures; ``captions_per_image`` counts the usable captions, so an image
whose captions are all empty shows up under ``"0"``. Image checks need the images
folder; without it every image counts as missing and ``images_dir_exists`` is false.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from rsitr.data.formats import CaptionRecord, ReadResult, read_dataset
from rsitr.data.images import MISSING_FILE, verify_images

ALL_SPLITS = "all"  # report key for records without an official split
MAX_EXAMPLES = 5
MAX_PROBLEMS = 100

ImageUnit = tuple[str, str]  # (split key, image key)


def _split_key(split: str | None) -> str:
    return ALL_SPLITS if split is None else split


def _primary_language(records: Sequence[CaptionRecord], language: str) -> str:
    """The language split counts use: ``language`` if present, else the most common one."""
    counts = Counter(record.language for record in records)
    if not counts or language in counts:
        return language
    return counts.most_common(1)[0][0]


def _normalised(caption: str) -> str:
    return " ".join(caption.split()).casefold()


def _split_counts(annotated: Sequence[CaptionRecord], skipped: Sequence[CaptionRecord]) -> dict[str, dict[str, int]]:
    """Per split: distinct images, declared captions and empty captions (primary language only)."""
    images: dict[str, set[str]] = defaultdict(set)
    captions: Counter[str] = Counter()
    empty: Counter[str] = Counter(_split_key(record.split) for record in skipped)
    for record in annotated:
        key = _split_key(record.split)
        images[key].add(record.image_key)
        captions[key] += 1
    return {
        key: {"images": len(images[key]), "captions": captions[key], "empty_captions": empty[key]} for key in images
    }


def _captions_per_image(annotated: Sequence[CaptionRecord], usable: Sequence[CaptionRecord]) -> dict[str, int]:
    """Histogram {usable captions: images}, over every annotated (split, image)."""
    per_image: Counter[ImageUnit] = Counter({(_split_key(r.split), r.image_key): 0 for r in annotated})
    per_image.update((_split_key(r.split), r.image_key) for r in usable)
    histogram = Counter(per_image.values())
    return {str(n): histogram[n] for n in sorted(histogram)}


def _images_with_duplicate_captions(usable: Sequence[CaptionRecord]) -> int:
    """Images holding the same caption twice (compared case- and whitespace-insensitively)."""
    texts: dict[ImageUnit, list[str]] = defaultdict(list)
    for record in usable:
        texts[(_split_key(record.split), record.image_key)].append(_normalised(record.caption))
    return sum(1 for captions in texts.values() if len(set(captions)) < len(captions))


def _images_in_several_splits(records: Sequence[CaptionRecord]) -> int:
    splits: dict[str, set[str]] = defaultdict(set)
    for record in records:
        splits[record.image_key].add(_split_key(record.split))
    return sum(1 for names in splits.values() if len(names) > 1)


def _image_checks(image_paths: dict[str, str], images_dir: Path, workers: int, decode: bool) -> dict[str, Any]:
    """Missing and unreadable images; ``image_paths`` maps image key -> path."""
    exists = images_dir.is_dir()
    if not exists:
        missing = list(image_paths)
        problems: dict[str, str | None] = {}
    elif decode:
        problems = verify_images(list(image_paths.values()), workers=workers)
        missing = [key for key, path in image_paths.items() if problems[path] == MISSING_FILE]
    else:
        problems = {}
        missing = [key for key, path in image_paths.items() if not os.path.isfile(path)]
    unreadable = [
        {"image": key, "reason": problems[path]}
        for key, path in image_paths.items()
        if problems.get(path) not in (None, MISSING_FILE)
    ]
    return {
        "images_dir_exists": exists,
        "images_decoded": bool(exists and decode),
        "missing_images": {"count": len(missing), "examples": missing[:MAX_EXAMPLES]},
        "unreadable_images": {"count": len(unreadable), "examples": unreadable[:MAX_EXAMPLES]},
    }


def build_report(
    result: ReadResult, format: str, root: str | Path, language: str = "en", workers: int = 2, decode: bool = True
) -> dict[str, Any]:
    """The inspect report of an already-read dataset."""
    annotated_all = [*result.records, *result.skipped]
    primary = _primary_language(annotated_all, language)
    annotated = [r for r in annotated_all if r.language == primary]
    usable = [r for r in result.records if r.language == primary]
    skipped = [r for r in result.skipped if r.language == primary]
    image_paths = {record.image_key: record.image_path for record in annotated_all}
    dataset = annotated_all[0].dataset if annotated_all else Path(root).resolve().name
    report: dict[str, Any] = {
        "dataset": dataset,
        "format": format,
        "root": str(Path(root).resolve()),
        "images_dir": result.images_dir,
        "splits": _split_counts(annotated, skipped),
        "languages": dict(Counter(record.language for record in annotated_all)),
        "primary_language": primary,
        "captions_per_image": _captions_per_image(annotated, usable),
        "images_with_duplicate_captions": _images_with_duplicate_captions(usable),
        "images_in_several_splits": _images_in_several_splits(annotated),
    }
    report.update(_image_checks(image_paths, Path(result.images_dir), workers, decode))
    report["problem_count"] = len(result.problems)
    report["problems"] = [{"item": p.item, "reason": p.reason} for p in result.problems[:MAX_PROBLEMS]]
    return report


@dataclass(frozen=True)
class ReadOptions:
    """How to read the folder: the keyword options of :func:`rsitr.data.formats.read_dataset`."""

    name: str | None = None
    language: str = "en"
    languages: Sequence[str] = ()
    split: str | None = None
    annotation: str | Path | None = None


def inspect_dataset(
    format: str,
    root: str | Path,
    images: str | Path | None = None,
    workers: int = 2,
    *,
    reading: ReadOptions = ReadOptions(),
    decode: bool = True,
) -> dict[str, Any]:
    """Read ``root`` as ``format`` and report counts, caption statistics and image problems.

    ``decode=False`` only checks that image files exist (fast on full datasets).
    Raises DataError for unusable annotations (see :func:`rsitr.data.formats.read_dataset`).
    """
    result = read_dataset(format, root, images, name=reading.name, language=reading.language,
                          languages=reading.languages, split=reading.split, annotation=reading.annotation)
    return build_report(result, format, root, language=reading.language, workers=workers, decode=decode)
