"""The synthetic benchmark generator: formats, determinism, planted defects, captions.

Files are parsed directly (not through rsitr's loaders) so these tests pin the
on-disk formats themselves.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsitr.data.synth import SCENE_CLASSES, BenchmarkOptions, generate_benchmark
from rsitr.data.synth.arabic import arabic_slots
from rsitr.data.synth.classes import CLASSES
from rsitr.data.synth.english import INVERSE_RELATION_PHRASES, RELATION_PHRASES
from rsitr.data.synth.layout import make_layout
from rsitr.data.synth.phash import phash
from rsitr.data.synth.scene import Scene
from rsitr.data.synth.vocabulary import COLOURS, ENGLISH_COUNT_WORDS, LANDMARKS, OBJECT_KINDS
from rsitr.errors import ConfigError, DataError

imagehash = pytest.importorskip("imagehash")

N_IMAGES = 200
ARABIC_LETTER = re.compile("[\u0600-\u06ff]")


def _generate(root: Path, n_images: int, seed: int, **options) -> tuple[Path, dict]:
    summary = generate_benchmark(root, n_images, seed, BenchmarkOptions(**options))
    return root, summary


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, dict]:
    return _generate(tmp_path_factory.mktemp("synth_a"), N_IMAGES, 1)


@pytest.fixture(scope="module")
def bench_again(tmp_path_factory) -> tuple[Path, dict]:
    return _generate(tmp_path_factory.mktemp("synth_b"), N_IMAGES, 1)


@pytest.fixture(scope="module")
def ground_truth(bench) -> dict:
    return json.loads((bench[0] / "ground_truth.json").read_text(encoding="utf-8"))


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text.split("\n")[:-1]


def _read_precomp(folder: Path, split: str) -> list[tuple[str, list[str], list[str]]]:
    """(file name, 5 English captions, 5 Arabic captions) per image, parsing the files as published."""
    names = _lines(folder / f"{split}_filename.txt")
    captions = _lines(folder / f"{split}_caps.txt")
    captions_ar = _lines(folder / f"{split}_caps_ar.txt")
    assert len(captions_ar) == len(captions)
    if split == "test":
        assert len(names) == len(captions)
        groups = [names[i:i + 5] for i in range(0, len(names), 5)]
        assert all(len(set(group)) == 1 and len(group) == 5 for group in groups)
        names = [group[0] for group in groups]
    assert len(captions) == 5 * len(names)
    return [(name, captions[5 * i:5 * i + 5], captions_ar[5 * i:5 * i + 5]) for i, name in enumerate(names)]


def _read_karpathy(folder: Path) -> dict:
    return json.loads((folder / "dataset.json").read_text(encoding="utf-8"))


def _captions_by_path(root: Path) -> dict[str, list[str]]:
    """English captions of every image, keyed by the path ground_truth.json uses."""
    captions: dict[str, list[str]] = {}
    for split in ("train", "test"):
        for name, english, _ in _read_precomp(root / "synth_rsicd", split):
            captions[f"synth_rsicd/synth_rsicd_images/{name}"] = english
    for entry in _read_karpathy(root / "synth_sydney")["images"]:
        captions[f"synth_sydney/images/{entry['filename']}"] = [s["raw"] for s in entry["sentences"]]
    return captions


def _file_digests(root: Path) -> dict[str, str]:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def _hash(root: Path, relpath: str):
    with Image.open(root / relpath) as image:
        return imagehash.phash(image)


# --- determinism -----------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files(bench, bench_again):
    first, second = _file_digests(bench[0]), _file_digests(bench_again[0])
    assert len(first) > N_IMAGES
    assert first == second
    assert bench[1] == bench_again[1]


def test_different_seed_gives_different_data(bench, tmp_path):
    other, _ = _generate(tmp_path / "seed2", N_IMAGES, 2)
    first, second = _file_digests(bench[0]), _file_digests(other)
    assert first["synth_rsicd/train_caps.txt"] != second["synth_rsicd/train_caps.txt"]
    shared_names = set(first) & set(second)
    same_images = [name for name in shared_names if name.endswith((".jpg", ".tif")) and first[name] == second[name]]
    assert not same_images


# --- formats ---------------------------------------------------------------------------------

def test_precomp_files_have_five_captions_per_image(bench):
    root, summary = bench
    folder = root / "synth_rsicd"
    for split in ("train", "test"):
        images = _read_precomp(folder, split)
        assert len(images) == summary["datasets"]["synth_rsicd"][split]["images"]
        for name, english, arabic in images:
            assert (folder / "synth_rsicd_images" / name).is_file()
            assert len(english) == 5 and len(arabic) == 5
            assert all(c == c.lower() and c.endswith(" .") and "  " not in c for c in english)
            assert all(ARABIC_LETTER.search(c) and not re.search("[a-z]", c) for c in arabic)
    listed = {name for split in ("train", "test") for name, _, _ in _read_precomp(folder, split)}
    assert listed == {path.name for path in (folder / "synth_rsicd_images").iterdir()}
    assert all(name.endswith(".jpg") for name in listed)


def test_karpathy_json_has_five_sentences_per_image(bench):
    root, summary = bench
    folder = root / "synth_sydney"
    dataset = _read_karpathy(folder)
    assert dataset["dataset"] == "synth_sydney"
    images = dataset["images"]
    assert [entry["imgid"] for entry in images] == list(range(len(images)))
    for entry in images:
        assert (folder / "images" / entry["filename"]).is_file() and entry["filename"].endswith(".tif")
        assert entry["split"] in ("train", "val", "test")
        for key in ("sentences", "sentences_ar"):
            sentences = entry[key]
            assert len(sentences) == 5
            assert [s["sentid"] for s in sentences] == entry["sentids"]
            assert all(s["imgid"] == entry["imgid"] and s["tokens"] and "." not in s["tokens"] for s in sentences)
        assert all(ARABIC_LETTER.search(s["raw"]) for s in entry["sentences_ar"])
    assert {path.name for path in (folder / "images").iterdir()} == {entry["filename"] for entry in images}
    for split in ("train", "val", "test"):
        assert sum(e["split"] == split for e in images) == summary["datasets"]["synth_sydney"][split]["images"]


def test_ground_truth_describes_every_file(bench, ground_truth):
    root, summary = bench
    on_disk = {str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".jpg", ".tif")}
    assert set(ground_truth["images"]) == on_disk
    assert ground_truth["summary"] == summary
    distinct = [e for e in ground_truth["images"].values() if e["role"] != "near_duplicate"]
    assert len(distinct) == N_IMAGES == summary["n_images"]
    assert {e["class"] for e in distinct} == set(SCENE_CLASSES) and len(SCENE_CLASSES) >= 12
    for relpath, entry in ground_truth["images"].items():
        assert 1 <= entry["count"] <= 5
        with Image.open(root / relpath) as image:
            assert image.width == image.height == entry["size_px"]
        if entry["role"] != "near_duplicate":
            assert 64 <= entry["size_px"] <= 96


def test_arabic_can_be_switched_off_and_reruns_replace_old_output(tmp_path):
    root, _ = _generate(tmp_path / "out", 40, 5)
    root, summary = _generate(tmp_path / "out", 20, 5, arabic=False, image_size=(48, 48))
    assert not list(root.rglob("*_ar.txt"))
    assert all("sentences_ar" not in e for e in _read_karpathy(root / "synth_sydney")["images"])
    images = [p for p in root.rglob("*") if p.suffix in (".jpg", ".tif")]
    assert len(images) == summary["n_files"]
    assert not (root / ".synth_partial").exists()


# --- pHash guarantees ------------------------------------------------------------------------

def test_internal_phash_matches_imagehash(bench, ground_truth):
    root = bench[0]
    for relpath, entry in itertools.islice(ground_truth["images"].items(), 60):
        assert str(_hash(root, relpath)) == entry["phash"]
        with Image.open(root / relpath) as image:
            assert format(phash(image), "016x") == entry["phash"]


def test_planted_near_duplicates_are_phash_duplicates(bench, ground_truth):
    root = bench[0]
    pairs = ground_truth["near_duplicates"]
    assert len(pairs) == bench[1]["near_duplicates"] > 0
    assert {p["transform"]["kind"] for p in pairs} <= {"jpeg", "resize", "brightness"}
    for pair in pairs:
        assert pair["a"].startswith("synth_rsicd/") and pair["b"].startswith("synth_sydney/")
        assert _hash(root, pair["a"]) - _hash(root, pair["b"]) <= 2
        assert ground_truth["images"][pair["b"]]["split"] == pair["b_split"]
    leaks = [p for p in pairs if p["a_split"] == "test" and p["b_split"] == "train"]
    assert leaks, "some test images of synth_rsicd must be copied into synth_sydney train"
    karpathy = _read_karpathy(root / "synth_sydney")["images"]
    splits = {f"synth_sydney/images/{e['filename']}": e["split"] for e in karpathy}
    assert all(splits[p["b"]] == "train" for p in leaks)


def test_distinct_images_and_twins_are_not_phash_duplicates(bench, ground_truth):
    root = bench[0]
    copies = {pair["b"] for pair in ground_truth["near_duplicates"]}
    hashes = {path: _hash(root, path) for path in ground_truth["images"] if path not in copies}
    for twin in ground_truth["twins"]:
        assert hashes[twin["original"]] - hashes[twin["twin"]] > 4
    distances = [a - b for a, b in itertools.combinations(hashes.values(), 2)]
    assert len(distances) == N_IMAGES * (N_IMAGES - 1) // 2
    assert min(distances) > 4


# --- twins -----------------------------------------------------------------------------------

def _mentions(caption: str, attribute: str, value, landmark: str) -> bool:
    """Whether ``caption`` states ``attribute`` = ``value`` (relations: with respect to the landmark)."""
    words = caption.split()
    if attribute == "colour":
        return value in words
    if attribute == "count":
        return (ENGLISH_COUNT_WORDS[value] if value > 1 else "a") in words
    landmark_words = LANDMARKS[landmark].english
    return (any(f"{phrase} {landmark_words}" in caption for phrase in RELATION_PHRASES[value])
            or any(caption.startswith(f"{landmark_words} is {phrase} ") for phrase in INVERSE_RELATION_PHRASES[value]))


def test_twins_differ_in_exactly_one_attribute_and_captions_say_so(bench, ground_truth):
    captions = _captions_by_path(bench[0])
    twins = ground_truth["twins"]
    assert len(twins) == bench[1]["twins"] == round(N_IMAGES * 0.1)
    assert {t["attribute"] for t in twins} == {"count", "colour", "relation"}
    for twin in twins:
        original, copy = ground_truth["images"][twin["original"]], ground_truth["images"][twin["twin"]]
        changed = [key for key in ("class", "object", "count", "colour", "size", "relation", "landmark")
                   if original[key] != copy[key]]
        assert changed == [twin["attribute"]]
        assert (original[twin["attribute"]], copy[twin["attribute"]]) == (twin["from"], twin["to"])
        assert (original["dataset"], original["split"]) == (copy["dataset"], copy["split"])
        landmark = copy["landmark"]
        assert sum(_mentions(c, twin["attribute"], twin["to"], landmark) for c in captions[twin["twin"]]) >= 3
        assert sum(_mentions(c, twin["attribute"], twin["from"], landmark) for c in captions[twin["original"]]) >= 3


# --- captions --------------------------------------------------------------------------------

def test_weak_captions_sit_where_ground_truth_says(bench, ground_truth):
    root, summary = bench
    weak = ground_truth["weak_captions"]
    total_captions = sum(s["captions"] for d in summary["datasets"].values() for s in d.values())
    assert len(weak) == round(0.02 * total_captions) > 0
    sentences = {}
    for entry in _read_karpathy(root / "synth_sydney")["images"]:
        for english, arabic in zip(entry["sentences"], entry["sentences_ar"]):
            sentences[english["sentid"]] = (english["raw"], arabic["raw"], entry["filename"])
    for item in weak:
        assert item["caption_class"] != item["true_class"]
        if item["dataset"] == "synth_rsicd":
            folder = root / "synth_rsicd"
            line = item["line"]
            assert line % 5 == item["caption_index"]
            english = _lines(folder / f"{item['split']}_caps.txt")[line]
            arabic = _lines(folder / f"{item['split']}_caps_ar.txt")[line]
            names = _lines(folder / f"{item['split']}_filename.txt")
            name = names[line] if item["split"] == "test" else names[line // 5]
        else:
            assert item["sentid"] % 5 == item["caption_index"]
            english, arabic, name = sentences[item["sentid"]]
        assert (english, arabic, name) == (item["caption"], item["caption_ar"], item["filename"])
        assert CLASSES[item["caption_class"]].keyword in english
        assert CLASSES[item["true_class"]].keyword not in english


def test_every_true_caption_names_its_class_and_states_true_attributes(bench, ground_truth):
    captions = _captions_by_path(bench[0])
    weak = {(w["dataset"], w["filename"], w["caption_index"]) for w in ground_truth["weak_captions"]}
    all_colours = set(COLOURS)
    distinct_per_image = []
    for relpath, entry in ground_truth["images"].items():
        dataset, filename = relpath.split("/")[0], relpath.rsplit("/", 1)[1]
        kind = OBJECT_KINDS[entry["object"]]
        distinct_per_image.append(len(set(captions[relpath])))
        for index, caption in enumerate(captions[relpath]):
            if (dataset, filename, index) in weak:
                continue
            assert CLASSES[entry["class"]].keyword in caption, caption
            mentions_object = re.search(rf"\b({kind.english_singular}|{kind.english_plural})\b", caption)
            if not mentions_object:
                continue
            words = set(caption.split())
            assert words & all_colours <= {entry["colour"]}, (caption, entry)
            stated_counts = {n for n, word in ENGLISH_COUNT_WORDS.items() if word in words}
            assert stated_counts <= {entry["count"]}, (caption, entry)
            stated_sizes = words & {"large", "small"}
            assert stated_sizes <= {entry["size"]}, (caption, entry)
    assert min(distinct_per_image) >= 4
    all_captions = [c for caps in captions.values() for c in caps]
    assert len(set(all_captions)) > 0.6 * len(all_captions)


def _scene(scene_class: str, count: int, colour: str, relation: str = "left") -> Scene:
    spec = CLASSES[scene_class]
    layout = make_layout(spec.landmark, spec.object_kind, relation, count, "large", np.random.default_rng(0))
    return Scene(scene_class, count, colour, "large", relation, layout)


@pytest.mark.parametrize(
    ("scene_class", "count", "colour", "expected_np", "expected_genitive"),
    [
        ("airport", 1, "white", "طائرة واحدة بيضاء", "طائرة واحدة بيضاء"),
        ("airport", 2, "white", "طائرتان بيضاوان", "طائرتين بيضاوين"),
        ("airport", 3, "red", "ثلاث طائرات حمراء", "ثلاث طائرات حمراء"),
        ("industrial", 4, "blue", "أربعة خزانات زرقاء", "أربعة خزانات زرقاء"),
        ("industrial", 2, "green", "خزانان أخضران", "خزانين أخضرين"),
        ("desert", 5, "gray", "خمس صخور رمادية", "خمس صخور رمادية"),
        ("playground", 2, "red", "ملعبا تنس أحمران", "ملعبي تنس أحمرين"),  # masculine idafa dual
        ("parking", 2, "yellow", "سيارتان صفراوان", "سيارتين صفراوين"),
    ],
)
def test_arabic_numbers_and_colours_agree_with_the_noun(scene_class, count, colour, expected_np, expected_genitive):
    slots = arabic_slots(_scene(scene_class, count, colour))
    assert slots["np_cc"] == expected_np
    assert slots["inv_rel_np"].endswith(expected_genitive)


def test_arabic_verb_gender_follows_noun_and_count():
    assert arabic_slots(_scene("industrial", 2, "white"))["lie_verb"] == "يقع"  # two masculine tanks
    assert arabic_slots(_scene("industrial", 3, "white"))["lie_verb"] == "تقع"  # non-human plural
    assert arabic_slots(_scene("airport", 1, "white"))["lie_verb"] == "تقع"  # one feminine plane


# --- parameter checks ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "options",
    [
        {"n_images": 5},
        {"n_images": 50, "twin_rate": 0.7},
        {"n_images": 50, "image_size": (96, 64)},
        {"n_images": 50, "test_share": 0.6},
        {"n_images": 50, "seed": -1},
        {"n_images": 10, "karpathy_share": 0.05},
    ],
)
def test_invalid_parameters_raise_config_error(tmp_path, options):
    arguments = {"seed": 0, **options}
    with pytest.raises(ConfigError):
        generate_benchmark(tmp_path / "out", arguments.pop("n_images"), arguments.pop("seed"),
                           BenchmarkOptions(**arguments))
    assert not (tmp_path / "out" / "synth_rsicd").exists()


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "synth_rsicd").mkdir()
    (tmp_path / "synth_rsicd" / "mine.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(DataError):
        generate_benchmark(tmp_path, 20, 0)
    assert (tmp_path / "synth_rsicd" / "mine.txt").read_text(encoding="utf-8") == "keep me"
