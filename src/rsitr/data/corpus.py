"""Image-caption corpora for continual CLIP pretraining: CSV tables and WebDataset shards.

Two on-disk layouts of the caption corpora behind RemoteCLIP (Liu et al. 2024,
"RemoteCLIP: A Vision Language Foundation Model for Remote Sensing") and
GeoRSCLIP / RS5M (Zhang et al. 2024):

* ``CsvCorpus``: a table with an image-path column and a caption column, as read
  by open_clip_train's ``--csv-img-key`` / ``--csv-caption-key`` /
  ``--csv-separator`` (open_clip's default separator is a tab; RemoteCLIP's files
  use commas, the default here). Image paths are relative to the CSV's folder or
  absolute.
* ``WebDatasetCorpus``: ``.tar`` shards whose consecutive members sharing a key
  (the name up to the first dot of its basename) form one sample, ``<key>.jpg`` +
  ``<key>.txt``. Shards are read as a stream with Python's ``tarfile`` in ``r|``
  mode, one member at a time, so a corpus larger than memory can be trained on.
  ``tarfile`` rather than the ``webdataset`` package: the format is a plain tar,
  the reader is ~40 lines, and it needs no extra dependency.

Both yield ``CorpusSample(key, image bytes, caption)`` in file order; for the same
images (as ``rsitr.data.synth_corpus`` writes them) the two sequences are equal,
so batches built from either are identical. ``open_corpus`` picks a reader from
the ``CORPUS_FORMATS`` registry. Batching lives in ``corpus_batches.py``.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from PIL import Image

from rsitr.errors import ConfigError, DataError, unknown_name

IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "tif", "tiff")
CAPTION_EXTENSION = "txt"
_BRACE_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")


@dataclass(frozen=True)
class CorpusSample:
    """One image-caption pair: the encoded image file's bytes and its caption."""

    key: str
    image: bytes
    caption: str

    def decode(self) -> Image.Image:
        """The image as RGB pixels."""
        with Image.open(io.BytesIO(self.image)) as image:
            return image.convert("RGB")


def sample_key(name: str) -> tuple[str, str]:
    """WebDataset split of a file name: ("dir/0001", "jpg") for "dir/0001.jpg"."""
    folder, _, base = name.rpartition("/")
    stem, _, extension = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), extension.lower()


# --------------------------------------------------------------------------- CSV
class CsvCorpus:
    """Samples of an open_clip-style CSV, streamed row by row in file order.

    The key of a sample is its image file name up to the first dot, as a WebDataset
    key. Errors (``DataError``) name the file and line: a missing column (listing the
    columns present), an empty caption, a missing image.
    """

    def __init__(self, path: "str | Path", img_key: str = "filepath", caption_key: str = "title",
                 separator: str = ","):
        if len(separator) != 1:
            raise ConfigError(f"csv separator {separator!r} must be one character, e.g. ',' or '\\t'")
        self.path = Path(path)
        self.img_key, self.caption_key, self.separator = img_key, caption_key, separator
        if not self.path.is_file():
            raise DataError(f"corpus CSV {self.path} not found; check the path")
        with open(self.path, encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle, delimiter=separator), [])
        for option, column in (("img_key", img_key), ("caption_key", caption_key)):
            if column not in header:
                raise DataError(f"{self.path}: no column {column!r} (columns with separator {separator!r}: "
                                f"{', '.join(header) or 'none'}); pass {option}= (--csv-{option.replace('_', '-')}) "
                                f"or separator= to match the file")

    def _image_path(self, filepath: str) -> Path:
        path = Path(filepath)
        return path if path.is_absolute() else self.path.parent / path

    def _sample(self, line: int, row: dict) -> CorpusSample:
        filepath, caption = (row.get(self.img_key) or "").strip(), (row.get(self.caption_key) or "").strip()
        if not caption:
            raise DataError(f"{self.path}: line {line}: empty {self.caption_key!r} caption; fill it or drop the row")
        image_path = self._image_path(filepath)
        if not filepath or not image_path.is_file():
            raise DataError(f"{self.path}: line {line}: image {image_path} not found; {self.img_key!r} paths are "
                            f"absolute or relative to {self.path.parent}")
        return CorpusSample(sample_key(Path(filepath).name)[0], image_path.read_bytes(), caption)

    def __iter__(self) -> Iterator[CorpusSample]:
        with open(self.path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter=self.separator)
            for row in reader:
                yield self._sample(reader.line_num, row)


# --------------------------------------------------------------------------- WebDataset
def _expand_braces(pattern: str) -> list[str]:
    """WebDataset/braceexpand numeric ranges: "a-{000..002}.tar" -> a-000, a-001, a-002."""
    match = _BRACE_RANGE.search(pattern)
    if match is None:
        return [pattern]
    first, last = match.group(1), match.group(2)
    width = len(first)
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [expanded for number in range(int(first), int(last) + 1)
            for expanded in _expand_braces(f"{head}{number:0{width}d}{tail}")]


def expand_shards(urls_or_glob: "str | Path | Sequence[str | Path]") -> list[Path]:
    """Shard paths from a list, a glob, a brace range or a folder (its ``*.tar``, sorted)."""
    patterns = [urls_or_glob] if isinstance(urls_or_glob, (str, Path)) else list(urls_or_glob)
    shards: list[Path] = []
    for pattern in (expanded for item in patterns for expanded in _expand_braces(str(item))):
        if os.path.isdir(pattern):
            shards += sorted(Path(pattern).glob("*.tar"))
        elif glob.has_magic(pattern):
            shards += [Path(path) for path in sorted(glob.glob(pattern))]
        elif os.path.isfile(pattern):
            shards.append(Path(pattern))
        else:
            raise DataError(f"shard {pattern} not found; check the path, glob or {{000..009}} range")
    if not shards:
        raise DataError(f"no .tar shards match {urls_or_glob}; check the path or glob")
    return shards


def _tar_sample(key: str, files: dict[str, bytes], shard: str) -> CorpusSample:
    image_extension = next((ext for ext in IMAGE_EXTENSIONS if ext in files), None)
    if image_extension is None or CAPTION_EXTENSION not in files:
        raise DataError(f"{shard}: sample {key!r} has members {sorted(files)}; a sample needs an image "
                        f"({'/'.join(IMAGE_EXTENSIONS)}) and a .{CAPTION_EXTENSION} caption")
    caption = files[CAPTION_EXTENSION].decode("utf-8").strip()
    if not caption:
        raise DataError(f"{shard}: sample {key!r} has an empty caption; fill {key}.txt or drop the sample")
    return CorpusSample(key, files[image_extension], caption)


def iter_tar_samples(stream: BinaryIO, shard: str) -> Iterator[CorpusSample]:
    """Samples of one tar read as a stream: only the current sample's members are held."""
    key, files = None, {}
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            while (member := tar.next()) is not None:
                tar.members.clear()  # stream mode would otherwise keep every header of the shard
                if not member.isfile():
                    continue
                member_key, extension = sample_key(member.name)
                if member_key != key:
                    if key is not None:
                        yield _tar_sample(key, files, shard)
                    key, files = member_key, {}
                files[extension] = tar.extractfile(member).read()
    except tarfile.TarError as exc:
        raise DataError(f"{shard}: unreadable tar shard ({exc}); re-create or remove it") from exc
    if key is not None:
        yield _tar_sample(key, files, shard)


class WebDatasetCorpus:
    """Samples of WebDataset ``.tar`` shards, streamed shard by shard in the given order."""

    def __init__(self, urls_or_glob: "str | Path | Sequence[str | Path]"):
        self.shards = expand_shards(urls_or_glob)

    def __iter__(self) -> Iterator[CorpusSample]:
        for shard in self.shards:
            with open(shard, "rb") as handle:
                yield from iter_tar_samples(handle, str(shard))


# --------------------------------------------------------------------------- registry
CORPUS_FORMATS: dict[str, type] = {"csv": CsvCorpus, "webdataset": WebDatasetCorpus}


def detect_format(path_or_glob: "str | Path | Sequence[str | Path]") -> str:
    """"csv" for a .csv/.tsv file; "webdataset" for shards, a glob, a range or a folder of .tar; else ConfigError."""
    if not isinstance(path_or_glob, (str, Path)):
        return "webdataset"
    text = str(path_or_glob)
    if text.endswith((".csv", ".tsv")):
        return "csv"
    if ".tar" in text or glob.has_magic(text) or _BRACE_RANGE.search(text):
        return "webdataset"
    if os.path.isdir(text) and any(Path(text).glob("*.tar")):
        return "webdataset"
    raise ConfigError(f"cannot tell the corpus format of {text}; pass format='csv' or format='webdataset'")


def open_corpus(path_or_glob: "str | Path | Sequence[str | Path]", format: str = "auto",
                **csv_options: str) -> "CsvCorpus | WebDatasetCorpus":
    """Open a corpus; ``csv_options`` are ``CsvCorpus``'s img_key, caption_key, separator."""
    if format == "auto":
        format = detect_format(path_or_glob)
    if format not in CORPUS_FORMATS:
        raise ConfigError(unknown_name("corpus format", format, [*CORPUS_FORMATS, "auto"]))
    if format == "webdataset" and csv_options:
        raise ConfigError(f"options {', '.join(sorted(csv_options))} apply to csv corpora only; drop them")
    if format == "csv" and str(path_or_glob).endswith(".tsv"):
        csv_options.setdefault("separator", "\t")
    return CORPUS_FORMATS[format](path_or_glob, **csv_options)
