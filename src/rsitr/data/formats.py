"""Readers for the on-disk formats of the public RSITR benchmarks.

Every reader turns one dataset folder into a flat, file-ordered list of
:class:`CaptionRecord` (one per caption) plus a list of :class:`Problem` for
items it had to drop. Whole-file faults that make the annotation ambiguous
(line counts that do not pair up, unreadable JSON, missing columns) raise
:class:`~rsitr.errors.DataError` instead, naming the files, the counts and the fix.

Formats (``READERS`` keys):

``precomp``
    GaLR/AMFMN/PE-RSITR layout: ``<split>_caps.txt`` (one caption per line) with
    ``<split>_filename.txt`` holding either one file name per image (5 captions
    each) or one file name per caption. Parallel captions in another language sit
    line-aligned in ``<split>_caps_<lang>.txt``.
``karpathy``
    ``dataset*.json`` with ``images[].filename/split/sentences[].raw`` (RSICD,
    RSITMD, UCM, Sydney); parallel languages as ``sentences_<lang>`` lists.
``nwpu``
    ``dataset_nwpu.json`` keyed by category; entries carry ``filename``, ``split``,
    ``raw``, ``raw_1`` ... ``raw_4``; images sit under ``<category>/``.
``csv``
    A ``*.csv`` with an image column (``filename`` or ``filepath``) and a caption
    column (``title`` or ``caption``), one row per caption; optional ``split`` and
    ``language``/``lang`` columns.

Records keep the original caption text (only surrounding whitespace is stripped) and
the original case. ``caption_index`` counts captions per (split, image, language).

Hostile or clumsy annotations never reach the file system: an image name that is absolute,
climbs out with ``..`` or holds a control character is refused (:data:`UNSAFE_PATH`) and its
captions dropped, so nothing outside the images folder is ever looked up. An image listed
twice in one split (a second entry, not a second caption) keeps its first listing; the later
one is a :data:`DUPLICATE_IMAGE` problem. Text files are read with universal newlines
(``\n``, ``\r\n`` and a lone ``\r``), and an annotation file with nothing in it is a
:class:`~rsitr.errors.DataError` naming it, never a silently missing split.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Callable, Iterable, Sequence

from rsitr.errors import DataError, unknown_name

PRECOMP_SPLIT_ORDER = ("train", "val", "test")
PRECOMP_CAPTIONS_PER_IMAGE = 5
CSV_IMAGE_COLUMNS = ("filename", "filepath")
CSV_CAPTION_COLUMNS = ("title", "caption")
CSV_LANGUAGE_COLUMNS = ("language", "lang")
NWPU_ANNOTATION = "dataset_nwpu.json"
UNSAFE_PATH = "unsafe image path"  # Problem.kind: the name would be looked up outside the images folder
DUPLICATE_IMAGE = "duplicate image"  # Problem.kind: a second entry for an image in the same split


@dataclass(frozen=True)
class CaptionRecord:
    """One caption of one image, as annotated on disk."""

    dataset: str
    image_key: str  # file name relative to the images folder ("forest/forest_1.jpg" for nwpu)
    image_path: str  # images_dir / image_key
    caption: str
    language: str  # "en", "ar", ...
    split: str | None  # official split ("train"/"val"/"test") or None when the file has none
    caption_index: int  # 0..k-1 within (split, image, language)


@dataclass(frozen=True)
class Problem:
    """An annotation item a reader dropped or doubts; ``reason`` says the fix."""

    dataset: str
    item: str  # offending file:line, JSON path or image
    reason: str
    kind: str = ""  # short category (UNSAFE_PATH, DUPLICATE_IMAGE); "" when the reason's start says it

    def __str__(self) -> str:
        return f"{self.dataset}: {self.item}: {self.reason}"


@dataclass
class ReadResult:
    """Records and problems of one dataset folder.

    ``skipped`` holds the annotated captions that were dropped because their text is
    empty (caption ""), so reports can count what the annotation declares as well as
    what is usable. ``images_dir`` is the resolved images folder. ``declared_splits``
    lists every split the annotation names, also those whose captions were all dropped.
    """

    records: list[CaptionRecord]
    problems: list[Problem]
    skipped: list[CaptionRecord] = field(default_factory=list)
    images_dir: str = ""
    declared_splits: list[str | None] = field(default_factory=list)

    def splits(self) -> list[str | None]:
        """Distinct splits of all annotated captions, in file order."""
        return list(dict.fromkeys(record.split for record in [*self.records, *self.skipped]))


# --------------------------------------------------------------------------- helpers


def unsafe_image_key(image_key: str) -> str | None:
    """Why ``image_key`` could name a file outside the images folder, or None when it cannot.

    Refused: absolute paths (POSIX ``/x``, Windows ``C:\\x`` or ``\\\\host``), any ``..``
    component (``/`` or ``\\`` separated) and control characters (a NUL, a stray CR).
    """
    control = next((char for char in image_key if unicodedata.category(char) == "Cc"), None)
    if control is not None:
        return f"the name holds control character U+{ord(control):04X}"
    if PurePosixPath(image_key).is_absolute() or PureWindowsPath(image_key).drive or image_key.startswith("\\"):
        return "it is an absolute path"
    if ".." in re.split(r"[\\/]", image_key):
        return "it climbs out of the images folder with '..'"
    return None


class _RecordBuilder:
    """Accumulates records, numbering captions per (split, image, language).

    Refuses unsafe image names before any path is built (:func:`unsafe_image_key`) and
    keeps the first listing of an image per split (:meth:`claim`).
    """

    def __init__(self, dataset: str, images_dir: Path) -> None:
        self.dataset = dataset
        self.images_dir = images_dir
        self.records: list[CaptionRecord] = []
        self.skipped: list[CaptionRecord] = []
        self.problems: list[Problem] = []
        self._next_index: Counter[tuple[str | None, str, str]] = Counter()
        self._paths: dict[str, str] = {}
        self._refused: dict[str, tuple[str, str]] = {}  # unsafe key -> (first item, why)
        self._refused_captions: Counter[str] = Counter()
        self._claims: dict[tuple[str | None, str], str] = {}  # (split, image key) -> item of its first listing
        self._splits: dict[str | None, None] = {}

    def problem(self, item: str, reason: str, kind: str = "") -> None:
        self.problems.append(Problem(self.dataset, item, reason, kind))

    def image_path(self, image_key: str) -> str:
        path = self._paths.get(image_key)
        if path is None:
            path = self._paths[image_key] = str(self.images_dir / image_key)
        return path

    def claim(self, image_key: str, split: str | None, item: str) -> bool:
        """True for the first listing of ``image_key`` in ``split``; a later listing is a problem, skipped."""
        self._splits.setdefault(split)
        first = self._claims.setdefault((split, image_key), item)
        if first == item:
            return True
        self.problem(item, f"{DUPLICATE_IMAGE}: {image_key!r} is listed again in split {split!r} (first at {first}); "
                           "the captions of this listing are dropped - list each image once per split", DUPLICATE_IMAGE)
        return False

    def _refuse(self, image_key: str, item: str) -> bool:
        """Whether ``image_key`` is unsafe (counted, reported once in :meth:`result`); checks each key once."""
        if image_key in self._paths:
            return False
        if image_key not in self._refused:
            why = unsafe_image_key(image_key)
            if why is None:
                self.image_path(image_key)
                return False
            self._refused[image_key] = (item, why)
        self._refused_captions[image_key] += 1
        return True

    def add(
        self, image_key: str, caption: Any, language: str, split: str | None, item: str, listing: str | None = None
    ) -> None:
        """Add one caption; an empty caption becomes a Problem naming ``item``, an unsafe image name one
        naming ``listing`` (where the image is named, default ``item``)."""
        self._splits.setdefault(split)
        if self._refuse(image_key, listing or item):
            return
        text = caption.strip() if isinstance(caption, str) else ""
        if not text:
            path = self.image_path(image_key)
            self.skipped.append(CaptionRecord(self.dataset, image_key, path, "", language, split, 0))
            textual = caption is None or isinstance(caption, str)
            what = "empty caption" if textual else f"caption is {type(caption).__name__}, not text"
            self.problem(item, f"{what} for image {image_key!r}; write the caption there or delete the entry")
            return
        key = (split, image_key, language)
        index = self._next_index[key]
        self._next_index[key] = index + 1
        path = self.image_path(image_key)
        self.records.append(CaptionRecord(self.dataset, image_key, path, text, language, split, index))

    def _refusals(self) -> list[Problem]:
        return [
            Problem(self.dataset, item, f"{UNSAFE_PATH}: {image_key!r} is refused because {why} "
                    f"({self._refused_captions[image_key]} caption(s) dropped, nothing opened); name the image "
                    f"relative to the images folder {self.images_dir}", UNSAFE_PATH)
            for image_key, (item, why) in self._refused.items()
        ]

    def result(self) -> ReadResult:
        problems = self.problems + self._refusals()
        return ReadResult(self.records, problems, self.skipped, str(self.images_dir), list(self._splits))


NOT_UTF8 = "\x00not-utf8\x00"  # stands in for a line that does not decode; never a caption or file name


def _read_lines(path: Path, builder: "_RecordBuilder | None" = None) -> list[str]:
    """Lines of a UTF-8 text file, split with universal newlines (``\\n``, ``\\r\\n``, a lone ``\\r``).

    A final newline ends the last line; form feeds and the other separators that
    ``str.splitlines`` also breaks at stay inside the line.

    A line that is not UTF-8 costs that line only: with ``builder`` it becomes a problem naming
    ``file:line`` and the line reads as ``NOT_UTF8`` (skipped by the caller); without, it raises.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from exc
    chunks = raw.removeprefix(b"\xef\xbb\xbf").splitlines()  # bytes: only \n, \r\n and \r break a line
    lines = []
    for line_no, chunk in enumerate(chunks, start=1):
        try:
            lines.append(chunk.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if builder is None:
                raise DataError(f"{path}:{line_no}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-save the "
                                "file as UTF-8") from exc
            builder.problem(f"{path}:{line_no}", f"not UTF-8 text ({exc.reason} at byte {exc.start}); the line is "
                                                 "skipped - re-save the file as UTF-8")
            lines.append(NOT_UTF8)
    return lines


def _check_not_empty(path: Path, what: str) -> None:
    """A zero-byte annotation file is an error naming it (an interrupted copy or download)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from exc
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes); restore it from the download (it should hold {what})")


def _load_json(path: Path, what: str) -> Any:
    _check_not_empty(path, what)
    try:
        with path.open(encoding="utf-8-sig") as handle:
            return json.load(handle)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from exc
    except RecursionError as exc:
        raise DataError(f"{path}: JSON nested too deeply to read; fix or re-download the file") from exc
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; fix or re-download the file"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text; re-save the file as UTF-8") from exc


def _check_root(root: str | Path) -> Path:
    path = Path(root)
    if not path.is_dir():
        raise DataError(
            f"dataset folder {path} does not exist or is not a folder; pass the folder holding the annotation files"
        )
    return path


def _dataset_name(root: Path, name: str | None) -> str:
    return name if name else root.resolve().name


def default_images_dir(format: str, root: str | Path) -> Path:
    """Where a format keeps its images when the caller names no folder."""
    root = Path(root)
    if format == "precomp":
        stem = root.resolve().name
        stem = stem[: -len("_precomp")] if stem.endswith("_precomp") else stem
        beside = root / f"{stem}_images"
        return beside if beside.is_dir() else root / "images"
    if format == "nwpu":
        return root
    if format in ("karpathy", "csv"):
        return root / "images"
    raise DataError(unknown_name("format", format, READERS))


def _images_dir(format: str, root: Path, images: str | Path | None) -> Path:
    return Path(images) if images is not None else default_images_dir(format, root)


def _find_annotation(root: Path, annotation: str | Path | None, pattern: str, format: str) -> Path:
    """The one annotation file of a folder, or the one the caller named."""
    if annotation is not None:
        path = Path(annotation)
        path = path if path.is_absolute() or path.exists() else root / path
        if not path.is_file():
            raise DataError(f"annotation file {path} not found; pass an existing file (absolute or relative to {root})")
        return path
    matches = sorted(root.glob(pattern))
    if not matches:
        raise DataError(f"no {pattern} in {root}; the {format!r} format needs one (or pass annotation=<file>)")
    if len(matches) > 1:
        names = ", ".join(match.name for match in matches)
        raise DataError(f"several {pattern} files in {root} ({names}); pass annotation=<file> to choose one")
    return matches[0]


def _keep_split(result: ReadResult, split: str | None, source: str) -> ReadResult:
    """Restrict a result to one split; an absent split is an error listing those present."""
    if split is None:
        return result
    present = [s for s in result.splits() if s is not None]
    if split not in present and (result.records or result.skipped):
        listed = ", ".join(map(str, present)) or "none"
        raise DataError(f"split {split!r} not found in {source}; splits present: {listed}")
    result.records = [r for r in result.records if r.split == split]
    result.skipped = [r for r in result.skipped if r.split == split]
    return result


def _wanted_languages(language: str, languages: Sequence[str]) -> list[str]:
    """Requested extra languages, without the main one and without repeats."""
    return [lang for lang in dict.fromkeys(languages) if lang != language]


# --------------------------------------------------------------------------- precomp


def _precomp_splits(root: Path) -> list[str]:
    """Split names with a ``<split>_caps.txt``: train, val, test first, then others sorted."""
    found = {path.name[: -len("_caps.txt")] for path in root.glob("*_caps.txt")}
    return [s for s in PRECOMP_SPLIT_ORDER if s in found] + sorted(found.difference(PRECOMP_SPLIT_ORDER))


def _precomp_image_per_line(
    names: list[str], n_caps: int, caps_file: Path, names_file: Path, per_image: int
) -> list[tuple[str, int]]:
    """(image key, file-name line number) for each caption line, from the explicit file-name list.

    Accepts one name per image (``n_caps == per_image * len(names)``) or one name per
    caption (``n_caps == len(names)``); any other count is ambiguous and raises.
    """
    if names and n_caps == per_image * len(names) and n_caps != len(names):
        return [(names[i // per_image], i // per_image + 1) for i in range(n_caps)]
    if n_caps == len(names):
        return [(name, i + 1) for i, name in enumerate(names)]
    raise DataError(
        f"{caps_file} has {n_caps} caption lines but {names_file} has {len(names)} file-name lines; "
        f"expected {per_image * len(names)} caption lines (one name per image, {per_image} captions each) "
        f"or {len(names)} (name repeated per caption){_first_disagreement(names, per_image, names_file)}. "
        "Make the two files agree (look for missing, extra or blank lines, also at the end)"
    )


def _first_disagreement(names: list[str], per_image: int, names_file: Path) -> str:
    """Where a name-per-caption file first deviates from ``per_image`` lines per image, if it does."""
    if len(set(names)) == len(names):
        return ""  # one name per image: the file-name list alone cannot say where a caption is missing
    start = 0
    while start < len(names):
        end = start
        while end + 1 < len(names) and names[end + 1] == names[start]:
            end += 1
        if end - start + 1 != per_image:
            return (f"; the first image without {per_image} lines is {names[start]!r} "
                    f"({names_file.name} lines {start + 1}-{end + 1})")
        start = end + 1
    return ""


def _report_split_runs(builder: _RecordBuilder, names: list[str], names_file: Path, n_caps: int) -> None:
    """In one-name-per-caption files, an image's lines should form one consecutive run."""
    if n_caps != len(names):
        return
    first_run_end: dict[str, int] = {}
    previous = None
    for line_no, name in enumerate(names, start=1):
        if name != previous and name in first_run_end and name:
            builder.problem(
                f"{names_file}:{line_no}",
                f"image {name!r} appears again after line {first_run_end[name]} in a separate run; its captions "
                f"are merged - check the file is not shuffled or concatenated twice",
            )
        if name:
            first_run_end[name] = line_no
        previous = name


def _parallel_caption_files(root: Path, split: str, language: str, languages: Sequence[str]) -> dict[str, Path]:
    """``<split>_caps_<lang>.txt`` files to read: the requested ones, or all found."""
    if languages:
        return {lang: root / f"{split}_caps_{lang}.txt" for lang in _wanted_languages(language, languages)}
    found = {}
    for path in sorted(root.glob(f"{split}_caps_*.txt")):
        lang = path.name[len(f"{split}_caps_") : -len(".txt")]
        if lang and lang != language:
            found[lang] = path
    return found


def _precomp_texts(
    builder: _RecordBuilder, root: Path, split: str, language: str, languages: Sequence[str], caps_file: Path,
    captions: list[str],
) -> dict[str, tuple[Path, list[str]]]:
    """The caption lines of each language of a split: the main file plus line-aligned parallel files."""
    texts_by_language = {language: (caps_file, captions)}
    for lang, path in _parallel_caption_files(root, split, language, languages).items():
        if not path.is_file():
            reason = f"no {lang!r} captions for split {split!r}; add this file or drop {lang!r} from languages"
            builder.problem(str(path), reason)
            continue
        lines = _read_lines(path, builder)
        if len(lines) != len(captions):
            raise DataError(
                f"{path} has {len(lines)} lines but {caps_file} has {len(captions)}; parallel caption files "
                f"must be line-aligned (line i translates line i) - fix the missing or extra lines"
            )
        texts_by_language[lang] = (path, lines)
    return texts_by_language


def _duplicate_name_lines(builder: _RecordBuilder, names: list[str], names_file: Path, split: str) -> set[int]:
    """File-name lines (1-based) that list an image again in a one-name-per-image file; reported, dropped."""
    return {
        line_no
        for line_no, name in enumerate(names, start=1)
        if name and not builder.claim(name, split, f"{names_file}:{line_no}")
    }


def _read_precomp_split(
    builder: _RecordBuilder, root: Path, split: str, language: str, languages: Sequence[str], per_image: int
) -> None:
    caps_file = root / f"{split}_caps.txt"
    names_file = root / f"{split}_filename.txt"
    if not names_file.is_file():
        raise DataError(
            f"{caps_file} has no companion {names_file.name}; the precomp layout needs both files per split"
        )
    captions = _read_lines(caps_file, builder)
    names = [name.strip() if name != NOT_UTF8 else "" for name in _read_lines(names_file, builder)]
    if not captions and not names:
        raise DataError(
            f"{caps_file} and {names_file.name} are empty (no lines): the {split!r} split would vanish; restore both "
            f"files from the download, or delete both to ingest without a {split!r} split"
        )
    image_of_line = _precomp_image_per_line(names, len(captions), caps_file, names_file, per_image)
    _report_split_runs(builder, names, names_file, len(captions))
    per_image_list = len(captions) != len(names)
    duplicates = _duplicate_name_lines(builder, names, names_file, split) if per_image_list else set()
    blank_name_lines = sorted({line for (name, line) in image_of_line if not name})
    for line in blank_name_lines:
        builder.problem(f"{names_file}:{line}", "blank file name; its captions are skipped - write the image file name")

    texts_by_language = _precomp_texts(builder, root, split, language, languages, caps_file, captions)
    for lang, (path, lines) in texts_by_language.items():
        for line_no, (text, (image_key, name_line)) in enumerate(zip(lines, image_of_line), start=1):
            if image_key and text != NOT_UTF8 and name_line not in duplicates:
                builder.add(image_key, text, lang, split, f"{path}:{line_no}", f"{names_file}:{name_line}")


def read_precomp(
    root: str | Path,
    images: str | Path | None = None,
    *,
    name: str | None = None,
    language: str = "en",
    languages: Sequence[str] = (),
    split: str | None = None,
    annotation: str | Path | None = None,
    captions_per_image: int = PRECOMP_CAPTIONS_PER_IMAGE,
) -> ReadResult:
    """Read a precomp folder (``<split>_caps.txt`` + ``<split>_filename.txt`` per split).

    ``split`` reads only that split; ``annotation`` is not used by this layout.
    """
    root = _check_root(root)
    splits = _precomp_splits(root)
    if not splits:
        raise DataError(
            f"no <split>_caps.txt files in {root}; the precomp layout needs e.g. train_caps.txt + train_filename.txt"
        )
    if split is not None:
        if split not in splits:
            listed = ", ".join(splits)
            raise DataError(f"split {split!r} not found in {root}: no {split}_caps.txt; splits present: {listed}")
        splits = [split]
    builder = _RecordBuilder(_dataset_name(root, name), _images_dir("precomp", root, images))
    for split_name in splits:
        _read_precomp_split(builder, root, split_name, language, languages, captions_per_image)
    return builder.result()


# --------------------------------------------------------------------------- karpathy


def _sentence_text(sentence: Any) -> Any:
    """``raw`` of a Karpathy sentence, falling back to joined ``tokens``; plain strings pass through."""
    if isinstance(sentence, str):
        return sentence
    if not isinstance(sentence, dict):
        return None
    raw = sentence.get("raw")
    if raw is None and isinstance(sentence.get("tokens"), list):
        return " ".join(str(token) for token in sentence["tokens"])
    return raw


def _karpathy_languages(images: list[Any], language: str, languages: Sequence[str]) -> list[str]:
    if languages:
        return _wanted_languages(language, languages)
    found: dict[str, None] = {}
    for image in images:
        if isinstance(image, dict):
            for key in image:
                if key.startswith("sentences_") and key[len("sentences_") :] != language:
                    found[key[len("sentences_") :]] = None
    return list(found)


def _entry_split(builder: _RecordBuilder, entry: dict[str, Any], item: str) -> tuple[bool, str | None]:
    """(usable, split) of a JSON entry: ``split`` must be text or absent."""
    split = entry.get("split")
    if split is None or isinstance(split, str):
        return True, split
    builder.problem(item, f"'split' is {type(split).__name__}, not text; the entry is skipped - write train, val or test")
    return False, None


def _read_karpathy_image(
    builder: _RecordBuilder, image: Any, item: str, language: str, extra_languages: list[str],
    lacking: dict[str, list[str]],
) -> None:
    """The captions of one ``images[]`` entry (all its languages), if the entry is usable."""
    filename = image.get("filename") if isinstance(image, dict) else None
    if not isinstance(filename, str) or not filename.strip():
        builder.problem(item, "entry has no 'filename'; its captions are skipped - add the image file name")
        return
    filename = filename.strip()
    usable, image_split = _entry_split(builder, image, item)
    if not usable or not builder.claim(filename, image_split, item):
        return
    sentence_lists = [(language, "sentences")] + [(lang, f"sentences_{lang}") for lang in extra_languages]
    for lang, key in sentence_lists:
        sentences = image.get(key)
        if not isinstance(sentences, list):
            lacking[key].append(filename)
            continue
        for j, sentence in enumerate(sentences):
            builder.add(filename, _sentence_text(sentence), lang, image_split, f"{item} ({filename}) {key}[{j}]", item)


def read_karpathy(
    root: str | Path,
    images: str | Path | None = None,
    *,
    name: str | None = None,
    language: str = "en",
    languages: Sequence[str] = (),
    split: str | None = None,
    annotation: str | Path | None = None,
) -> ReadResult:
    """Read a Karpathy-style ``dataset*.json`` (RSICD, RSITMD, UCM, Sydney)."""
    root = _check_root(root)
    path = _find_annotation(root, annotation, "dataset*.json", "karpathy")
    data = _load_json(path, "a Karpathy JSON object with an 'images' list")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(
            f"{path}: expected a JSON object with an 'images' list (Karpathy layout); is this the right format?"
        )
    builder = _RecordBuilder(_dataset_name(root, name), _images_dir("karpathy", root, images))
    extra_languages = _karpathy_languages(data["images"], language, languages)
    lacking: dict[str, list[str]] = defaultdict(list)
    for position, image in enumerate(data["images"]):
        _read_karpathy_image(builder, image, f"{path}: images[{position}]", language, extra_languages, lacking)
    for key, filenames in lacking.items():
        builder.problem(
            f"{path}: {key}",
            f"{len(filenames)} image(s) have no {key!r} list (first: {filenames[0]!r}); add it or drop that language",
        )
    return _keep_split(builder.result(), split, str(path))


# --------------------------------------------------------------------------- nwpu


def _nwpu_caption_keys(entry: dict[str, Any]) -> list[str]:
    """``raw`` then ``raw_1``, ``raw_2`` ... in numeric order."""
    numbered = sorted((int(m.group(1)), key) for key in entry if (m := re.fullmatch(r"raw_(\d+)", key)))
    return (["raw"] if "raw" in entry else []) + [key for _, key in numbered]


def read_nwpu(
    root: str | Path,
    images: str | Path | None = None,
    *,
    name: str | None = None,
    language: str = "en",
    languages: Sequence[str] = (),
    split: str | None = None,
    annotation: str | Path | None = None,
) -> ReadResult:
    """Read NWPU-Captions ``dataset_nwpu.json`` (category -> entries with raw, raw_1..raw_4)."""
    root = _check_root(root)
    if _wanted_languages(language, languages):
        raise DataError(f"the nwpu format has captions in one language only; drop languages={list(languages)!r}")
    path = _find_annotation(root, annotation, NWPU_ANNOTATION, "nwpu")
    data = _load_json(path, "a JSON object mapping each category to its entries")
    if not isinstance(data, dict) or not any(isinstance(v, list) for v in data.values()):
        raise DataError(
            f"{path}: expected a JSON object mapping each category to a list of entries (NWPU-Captions layout)"
        )

    builder = _RecordBuilder(_dataset_name(root, name), _images_dir("nwpu", root, images))
    for category, entries in data.items():
        if not isinstance(entries, list):
            builder.problem(f"{path}: {category}", "category value is not a list of entries; it is skipped")
            continue
        for position, entry in enumerate(entries):
            item = f"{path}: {category}[{position}]"
            filename = entry.get("filename") if isinstance(entry, dict) else None
            if not isinstance(filename, str) or not filename.strip():
                builder.problem(item, "entry has no 'filename'; its captions are skipped - add the image file name")
                continue
            image_key = f"{category}/{filename.strip()}"
            usable, entry_split = _entry_split(builder, entry, item)
            if not usable or not builder.claim(image_key, entry_split, item):
                continue
            keys = _nwpu_caption_keys(entry)
            if not keys:
                builder.problem(item, f"image {image_key!r} has no 'raw' captions; add raw, raw_1 ... raw_4")
            for key in keys:
                builder.add(image_key, entry[key], language, entry_split, f"{item} ({image_key}) {key}", item)
    return _keep_split(builder.result(), split, str(path))


# --------------------------------------------------------------------------- csv


def _pick_column(columns: Iterable[str], candidates: Sequence[str]) -> str | None:
    lowered = {column.strip().lower(): column for column in columns if column is not None}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _csv_delimiter(path: Path) -> str:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header = handle.readline()
    return "\t" if "\t" in header and "," not in header else ","


def _read_csv_rows(
    builder: _RecordBuilder, reader: csv.DictReader, path: Path, language: str, languages: Sequence[str],
    split: str | None,
) -> None:
    """Add the captions of every row of a caption CSV."""
    columns = reader.fieldnames or []
    image_column = _pick_column(columns, CSV_IMAGE_COLUMNS)
    caption_column = _pick_column(columns, CSV_CAPTION_COLUMNS)
    if image_column is None or caption_column is None:
        raise DataError(
            f"{path}: columns {columns!r} lack an image column ({' or '.join(CSV_IMAGE_COLUMNS)}) or a caption "
            f"column ({' or '.join(CSV_CAPTION_COLUMNS)}); rename the header"
        )
    language_column = _pick_column(columns, CSV_LANGUAGE_COLUMNS)
    split_column = _pick_column(columns, ("split",))
    kept_languages = {language, *languages} if languages else None
    for row in reader:
        item = f"{path}:{reader.line_num}"
        image_key = (row.get(image_column) or "").strip()
        if not image_key:
            builder.problem(item, f"blank {image_column!r}; the row is skipped - write the image file name")
            continue
        row_language = ((row.get(language_column) or "").strip() if language_column else "") or language
        if kept_languages is not None and row_language not in kept_languages:
            continue
        row_split = ((row.get(split_column) or "").strip() if split_column else "") or split
        builder.add(image_key, row.get(caption_column), row_language, row_split, item)


def read_csv(
    root: str | Path,
    images: str | Path | None = None,
    *,
    name: str | None = None,
    language: str = "en",
    languages: Sequence[str] = (),
    split: str | None = None,
    annotation: str | Path | None = None,
) -> ReadResult:
    """Read a caption CSV (RemoteCLIP / GeoRSCLIP / EBAKER evaluation sets), one row per caption.

    Rows without a ``split`` column (or with it blank) get ``split``; when the file has
    splits, ``split`` keeps only that split. ``languages`` (if given) keeps rows in
    ``language`` or one of ``languages``. The csv module splits rows on ``\\n``, ``\\r\\n``
    and a lone ``\\r`` alike. A zero-byte file is a DataError.
    """
    root = _check_root(root)
    path = _find_annotation(root, annotation, "*.csv", "csv")
    _check_not_empty(path, f"a header line ({CSV_IMAGE_COLUMNS[0]},{CSV_CAPTION_COLUMNS[0]}) and one row per caption")
    builder = _RecordBuilder(_dataset_name(root, name), _images_dir("csv", root, images))
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=_csv_delimiter(path))
            _read_csv_rows(builder, reader, path, language, languages, split)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text; re-save the file as UTF-8") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc}); check quoting") from exc
    return _keep_split(builder.result(), split, str(path))


# --------------------------------------------------------------------------- registry

READERS: dict[str, Callable[..., ReadResult]] = {
    "precomp": read_precomp,
    "karpathy": read_karpathy,
    "nwpu": read_nwpu,
    "csv": read_csv,
}


def read_dataset(
    format: str,
    root: str | Path,
    images: str | Path | None = None,
    *,
    name: str | None = None,
    language: str = "en",
    languages: Sequence[str] = (),
    split: str | None = None,
    annotation: str | Path | None = None,
) -> ReadResult:
    """Read a dataset folder with the reader registered for ``format``.

    ``images`` defaults per format (see :func:`default_images_dir`), ``name`` to the
    folder name. ``split`` restricts to one split (or, for a CSV without splits,
    labels every row). ``annotation`` picks the JSON/CSV file when a folder has several.
    """
    reader = READERS.get(format)
    if reader is None:
        raise DataError(unknown_name("format", format, READERS))
    return reader(
        root, images, name=name, language=language, languages=tuple(languages), split=split, annotation=annotation
    )
