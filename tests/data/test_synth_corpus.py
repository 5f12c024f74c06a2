"""The synthetic caption corpus generator: layout, determinism, wrong captions, disjointness.

Files are parsed directly (csv, tarfile), not through ``rsitr.data.corpus``, so
these tests pin the on-disk formats themselves.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import rsitr.data.synth_corpus.generator as generator
from rsitr.data.synth import SCENE_CLASSES, BenchmarkOptions, generate_benchmark
from rsitr.data.synth.classes import CLASSES
from rsitr.data.synth.scene import sample_scene
from rsitr.data.synth.vocabulary import OBJECT_KINDS
from rsitr.data.synth_corpus import CorpusOptions, generate_corpus
from rsitr.data.synth_corpus.captions import Facts, add_noise, describe, web_caption, wrong_facts
from rsitr.data.synth_corpus.phrases import CLASS_NAMES
from rsitr.data.synth_corpus.plan import plan_corpus
from rsitr.data.synth_corpus.shards import FIXED_MTIME
from rsitr.errors import ConfigError, DataError

N_IMAGES, SHARD_SIZE, SEED, WRONG_RATE = 60, 25, 0, 0.1
BENCHMARK_DEFAULT_SEED = 0  # params.yaml synth.seed
OPTIONS = {"shard_size": SHARD_SIZE, "wrong_caption_rate": WRONG_RATE}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("corpus_a")
    return root, generate_corpus(root, N_IMAGES, SEED, CorpusOptions(**OPTIONS), progress=False)


@pytest.fixture(scope="module")
def corpus_again(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus_b")
    generate_corpus(root, N_IMAGES, SEED, CorpusOptions(workers=2, **OPTIONS), progress=False)  # same bytes
    return root


def _digests(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def _rows(root: Path) -> list[dict]:
    with open(root / "corpus.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_byte_identical_for_same_seed_and_params(corpus, corpus_again):
    first, second = _digests(corpus[0]), _digests(corpus_again)
    assert first == second
    assert len(first) == N_IMAGES + 2 + 3  # images, csv, report, 3 shards
    assert not (corpus[0] / generator.STAGING_DIR).exists()


def test_csv_layout(corpus):
    root, _ = corpus
    assert (root / "corpus.csv").read_text(encoding="utf-8").startswith("filepath,title\n")
    rows = _rows(root)
    assert [row["filepath"] for row in rows] == [f"images/{i:07d}.jpg" for i in range(N_IMAGES)]
    for row in rows:
        assert row["title"].strip() and len(row["title"].split()) <= 16
        assert not re.search("[\u0600-\u06ff]", row["title"])  # English only
        with Image.open(root / row["filepath"]) as image:
            assert image.format == "JPEG" and 64 <= image.width == image.height <= 96


def test_shards_mirror_the_csv(corpus):
    root, _ = corpus
    rows = _rows(root)
    shards = sorted((root / "shards").glob("*.tar"))
    assert [path.name for path in shards] == ["corpus-000000.tar", "corpus-000001.tar", "corpus-000002.tar"]
    members = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            members += [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    assert [m.name for m, _ in members] == [f"{i:07d}.{ext}" for i in range(N_IMAGES) for ext in ("jpg", "txt")]
    headers = {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m, _ in members}
    assert headers == {(FIXED_MTIME, 0, 0, "", "", 0o644)}
    for row, (jpg, txt) in zip(rows, zip(members[::2], members[1::2])):
        assert jpg[1] == (root / row["filepath"]).read_bytes()
        assert txt[1].decode("utf-8") == row["title"]


def test_report_is_relative_and_counts(corpus):
    root, summary = corpus
    text = (root / "corpus_report.json").read_text(encoding="utf-8")
    assert json.loads(text) == summary
    assert str(root) not in text and "time" not in text
    assert summary["n_images"] == N_IMAGES and summary["n_shards"] == 3
    assert sum(summary["class_histogram"].values()) == N_IMAGES
    assert summary["n_wrong_captions"] == len(summary["wrong_caption_keys"]) == round(N_IMAGES * WRONG_RATE)


def test_wrong_caption_share_matches_parameter():
    for rate in (0.0, 0.05, 0.2):
        plan = plan_corpus(1000, 3, (64, 96), rate, 0.3)
        assert sum(item.wrong for item in plan) / 1000 == pytest.approx(rate, abs=0.001)
        assert sum(item.noisy for item in plan) == 300


def _mentions(caption: str, scene_class: str) -> bool:
    spec = CLASSES[scene_class]
    words = [name for name, _ in CLASS_NAMES[scene_class]]
    words += [OBJECT_KINDS[spec.object_kind].english_singular, OBJECT_KINDS[spec.object_kind].english_plural]
    return any(re.search(rf"\b{re.escape(word)}\b", caption.lower()) for word in words)


def test_wrong_captions_describe_another_class_true_ones_this_class():
    for scene_class in SCENE_CLASSES:
        for index in range(40):
            rng = np.random.default_rng([index])
            other = wrong_facts(scene_class, rng)
            assert other.scene_class != scene_class
            assert not _mentions(describe(other, rng)[0], scene_class)
            spec = CLASSES[scene_class]
            facts = Facts(scene_class, spec.object_kind, 2, spec.colours[0], spec.relations[0], spec.landmark)
            assert _mentions(describe(facts, rng)[0], scene_class)


def test_noise_and_styles(corpus):
    rng = np.random.default_rng(0)
    noisy = [add_noise("aerial view of a lake", rng) for _ in range(50)]
    assert all("aerial view of a lake" in caption and caption != "aerial view of a lake" for caption in noisy)
    styles = corpus[1]["caption_style_histogram"]
    assert styles["class"] > styles["objects"] > 0  # mostly class-level


def test_no_corpus_image_equals_a_benchmark_image(corpus, tmp_path):
    generate_benchmark(tmp_path / "bench", 40, BENCHMARK_DEFAULT_SEED, BenchmarkOptions(arabic=False))
    def pixels(path: Path) -> str:
        with Image.open(path) as image:
            return hashlib.sha256(np.asarray(image.convert("RGB")).tobytes()).hexdigest()
    bench = {pixels(path) for path in (tmp_path / "bench").rglob("*") if path.suffix in (".jpg", ".tif")}
    assert len(bench) >= 40
    assert bench.isdisjoint(pixels(path) for path in (corpus[0] / "images").glob("*.jpg"))


def test_killed_run_leaves_no_half_corpus(tmp_path, monkeypatch):
    made = []
    def failing(seed, item):
        if len(made) == 30:
            raise KeyboardInterrupt
        made.append(item)
        return real(seed, item)
    real = generator.make_item
    monkeypatch.setattr(generator, "make_item", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_corpus(tmp_path, 40, SEED, CorpusOptions(shard_size=10), progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == [generator.STAGING_DIR]
    monkeypatch.setattr(generator, "make_item", real)
    generate_corpus(tmp_path, 40, SEED, CorpusOptions(shard_size=10), progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["corpus.csv", "corpus_report.json", "images", "shards"]


def test_bad_parameters_and_foreign_folder(tmp_path):
    for options in ({"wrong_caption_rate": 1.5}, {"shard_size": 0}, {"image_size": (96, 64)}, {"workers": 0}):
        with pytest.raises(ConfigError):
            generate_corpus(tmp_path / "bad", 10, SEED, CorpusOptions(**options), progress=False)
    (tmp_path / "foreign" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match="not written by generate_corpus"):
        generate_corpus(tmp_path / "foreign", 10, SEED, progress=False)


def test_web_caption_is_deterministic():
    scene = sample_scene("airport", np.random.default_rng(5))
    first = web_caption(scene, False, True, np.random.default_rng(9))
    assert first == web_caption(scene, False, True, np.random.default_rng(9))


def test_module_entry_point(tmp_path, capsys):
    from rsitr.data.synth_corpus.__main__ import main

    assert main(["--out", str(tmp_path / "c"), "--images", "12", "--shard-size", "5"]) == 0
    assert len(list((tmp_path / "c" / "shards").glob("*.tar"))) == 3
    assert main(["--out", str(tmp_path / "d"), "--images", "12", "--shard-size", "0"]) == 2
    assert "shard_size=0" in capsys.readouterr().err
