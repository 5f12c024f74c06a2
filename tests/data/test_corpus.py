"""Corpus readers and batches: CSV and WebDataset agree, stream, resume, and fail with one-line errors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from rsitr.data.corpus import CsvCorpus, WebDatasetCorpus, iter_tar_samples, open_corpus
from rsitr.data.corpus_batches import center_crop_tensor, corpus_batches
from rsitr.data.synth_corpus import CorpusOptions, generate_corpus
from rsitr.errors import ConfigError, DataError

N_IMAGES, SHARD_SIZE, BATCH = 60, 25, 8


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root, N_IMAGES, 1, CorpusOptions(shard_size=SHARD_SIZE), progress=False)
    return root


def _tokenize(captions: list[str]) -> torch.Tensor:
    codes = [[ord(char) % 997 for char in caption[:16]] + [0] * (16 - len(caption[:16])) for caption in captions]
    return torch.tensor(codes)  # [B, 16]


def _batches(corpus, **options) -> list[dict]:
    return list(corpus_batches(corpus, BATCH, center_crop_tensor(32), _tokenize, **options))


def _one_line_error(kind: type, call, *needles: str) -> str:
    with pytest.raises(kind) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    return message


def test_csv_and_webdataset_yield_identical_samples(corpus_root):
    from_csv = list(open_corpus(corpus_root / "corpus.csv"))
    from_tar = list(open_corpus(corpus_root / "shards"))
    assert [s.key for s in from_csv] == [f"{i:07d}" for i in range(N_IMAGES)]
    assert [(s.key, s.caption) for s in from_csv] == [(s.key, s.caption) for s in from_tar]
    for a, b in zip(from_csv, from_tar):
        assert np.array_equal(np.asarray(a.decode()), np.asarray(b.decode()))


def test_shard_selection_forms(corpus_root):
    shards = corpus_root / "shards"
    expected = [path.name for path in sorted(shards.glob("*.tar"))]
    for source in (shards, str(shards / "*.tar"), str(shards / "corpus-{000000..000002}.tar"),
                   sorted(shards.glob("*.tar"))):
        corpus = open_corpus(source)
        assert isinstance(corpus, WebDatasetCorpus) and [p.name for p in corpus.shards] == expected
    _one_line_error(DataError, lambda: WebDatasetCorpus(shards / "corpus-000009.tar"), "corpus-000009.tar")


def test_open_corpus_registry_errors(corpus_root):
    assert isinstance(open_corpus(corpus_root / "corpus.csv", format="csv", separator=","), CsvCorpus)
    _one_line_error(ConfigError, lambda: open_corpus(corpus_root / "corpus.csv", format="parquet"),
                    "parquet", "auto, csv, webdataset")
    _one_line_error(ConfigError, lambda: open_corpus(corpus_root / "shards", img_key="x"), "img_key")
    _one_line_error(ConfigError, lambda: open_corpus(corpus_root / "images" / "0000000.jpg"), "format=")


def test_tab_separated_custom_columns_absolute_paths(corpus_root, tmp_path):
    rows = [f"{corpus_root / 'images' / f'{i:07d}.jpg'}\tcaption number {i}" for i in range(3)]
    (tmp_path / "pairs.tsv").write_text("img\tcap\n" + "\n".join(rows) + "\n", encoding="utf-8")
    samples = list(open_corpus(tmp_path / "pairs.tsv", img_key="img", caption_key="cap"))
    assert [(s.key, s.caption) for s in samples] == [(f"{i:07d}", f"caption number {i}") for i in range(3)]
    assert samples[1].image == (corpus_root / "images" / "0000001.jpg").read_bytes()


def test_bad_csv_one_line_errors(corpus_root, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("image,title\nimages/0000000.jpg,a\n", encoding="utf-8")
    _one_line_error(DataError, lambda: CsvCorpus(bad), str(bad), "'filepath'", "image, title", "img_key")
    image = corpus_root / "images" / "0000000.jpg"
    (tmp_path / "bad_caption.csv").write_text(f"filepath,title\n{image},fine\n{image}, \n")
    _one_line_error(DataError, lambda: list(CsvCorpus(tmp_path / "bad_caption.csv")), "line 3", "empty")
    (tmp_path / "bad_image.csv").write_text("filepath,title\nimages/missing.jpg,a caption\n")
    _one_line_error(DataError, lambda: list(CsvCorpus(tmp_path / "bad_image.csv")),
                    "line 2", str(tmp_path / "images" / "missing.jpg"), "not found")
    _one_line_error(DataError, lambda: CsvCorpus(tmp_path / "absent.csv"), "absent.csv")
    _one_line_error(ConfigError, lambda: CsvCorpus(bad, separator="||"), "separator")


class CountingReader(io.RawIOBase):
    """A file wrapper that counts the bytes read through it."""

    def __init__(self, data: bytes):
        self.inner, self.bytes_read = io.BytesIO(data), 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.inner.read(size)
        self.bytes_read += len(chunk)
        return chunk


def _tar(samples: dict[str, dict[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for key, files in samples.items():
            for extension, content in files.items():
                info = tarfile.TarInfo(f"{key}.{extension}")
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_shards_are_streamed_not_loaded():
    rng = np.random.default_rng(0)
    data = _tar({f"{i:05d}": {"jpg": rng.bytes(4000), "txt": b"a caption"} for i in range(500)})
    reader = CountingReader(data)
    first = next(iter_tar_samples(reader, "big.tar"))
    assert first.key == "00000" and first.caption == "a caption"
    assert reader.bytes_read < len(data) / 50  # one sample (+ read-ahead), not the 2 MB shard
    assert sum(1 for _ in iter_tar_samples(CountingReader(data), "big.tar")) == 500


def test_broken_shard_samples_fail_clearly():
    no_caption = _tar({"a": {"jpg": b"x"}})
    _one_line_error(DataError, lambda: list(iter_tar_samples(io.BytesIO(no_caption), "s.tar")),
                    "s.tar", "'a'", ".txt")
    _one_line_error(DataError, lambda: list(iter_tar_samples(io.BytesIO(b"not a tar" * 100), "t.tar")), "t.tar")


def test_batches_identical_from_csv_and_webdataset(corpus_root):
    options = {"shuffle_buffer": 16, "seed": 3, "epoch": 1}
    from_csv = _batches(open_corpus(corpus_root / "corpus.csv"), **options)
    from_tar = _batches(open_corpus(corpus_root / "shards"), **options)
    assert len(from_csv) == N_IMAGES // BATCH  # fixed size: the last partial batch is dropped
    for a, b in zip(from_csv, from_tar):
        assert a["keys"] == b["keys"] and a["captions"] == b["captions"]
        assert a["images"].shape == (BATCH, 3, 32, 32) and torch.equal(a["images"], b["images"])
        assert torch.equal(a["tokens"], b["tokens"])
    order = [key for batch in from_csv for key in batch["keys"]]
    assert order != sorted(order)  # shuffled
    again = _batches(open_corpus(corpus_root / "corpus.csv"), **options)
    assert [b["keys"] for b in again] == [b["keys"] for b in from_csv]
    other_epoch = _batches(open_corpus(corpus_root / "corpus.csv"), **{**options, "epoch": 2})
    assert [b["keys"] for b in other_epoch] != [b["keys"] for b in from_csv]


def test_skip_batches_resumes_exactly(corpus_root):
    corpus = open_corpus(corpus_root / "shards")
    full = _batches(corpus, shuffle_buffer=10, seed=7)
    resumed = _batches(corpus, shuffle_buffer=10, seed=7, skip_batches=3)
    assert len(resumed) == len(full) - 3
    for a, b in zip(full[3:], resumed):
        assert a["keys"] == b["keys"] and torch.equal(a["images"], b["images"])
    dataset = corpus_batches(corpus, BATCH, center_crop_tensor(32), _tokenize, skip_batches=3)
    dataset.set_epoch(1)  # a new epoch starts from its first batch
    assert len(list(DataLoader(dataset, batch_size=None, num_workers=0))) == N_IMAGES // BATCH
