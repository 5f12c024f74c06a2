"""Dataset readers: real benchmark files (skipped without ../shared) and tiny fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rsitr.data.formats import READERS, CaptionRecord, default_images_dir, read_dataset, unsafe_image_key
from rsitr.errors import DataError


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def five_captions(image: str) -> list[str]:
    return [f"{image} caption {i}" for i in range(5)]


@pytest.fixture
def precomp(tmp_path: Path) -> Path:
    """A precomp folder: train names once per image, test names once per caption."""
    root = tmp_path / "toy_precomp"
    root.mkdir()
    write_lines(root / "train_caps.txt", five_captions("a.jpg") + five_captions("b.jpg"))
    write_lines(root / "train_filename.txt", ["a.jpg", "b.jpg"])
    write_lines(root / "test_caps.txt", five_captions("c.jpg") + five_captions("d.jpg"))
    write_lines(root / "test_filename.txt", ["c.jpg"] * 5 + ["d.jpg"] * 5)
    return root


# --------------------------------------------------------------------------- registry


def test_registry_lists_the_four_formats():
    assert sorted(READERS) == ["csv", "karpathy", "nwpu", "precomp"]


def test_unknown_format_lists_valid_ones(tmp_path: Path):
    with pytest.raises(DataError, match="unknown format 'coco'.*csv, karpathy, nwpu, precomp"):
        read_dataset("coco", tmp_path)


def test_missing_root_is_a_clear_error(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        read_dataset("precomp", tmp_path / "nowhere")


# --------------------------------------------------------------------------- precomp


def test_precomp_groups_by_explicit_file_names(precomp: Path):
    result = read_dataset("precomp", precomp)
    assert result.problems == []
    train = [r for r in result.records if r.split == "train"]
    test = [r for r in result.records if r.split == "test"]
    assert [r.image_key for r in train] == ["a.jpg"] * 5 + ["b.jpg"] * 5
    assert [r.image_key for r in test] == ["c.jpg"] * 5 + ["d.jpg"] * 5
    assert all(r.caption.startswith(r.image_key) for r in result.records)
    assert [r.caption_index for r in train] == [0, 1, 2, 3, 4] * 2
    assert result.records[0] == CaptionRecord(
        dataset="toy_precomp",
        image_key="a.jpg",
        image_path=str(precomp / "images" / "a.jpg"),
        caption="a.jpg caption 0",
        language="en",
        split="train",
        caption_index=0,
    )


def test_precomp_uses_the_file_list_not_arithmetic(tmp_path: Path):
    """Per-caption names with uneven runs: image x has 2 captions, y has 3."""
    write_lines(tmp_path / "test_caps.txt", ["x1", "x2", "y1", "y2", "y3"])
    write_lines(tmp_path / "test_filename.txt", ["x.tif", "x.tif", "y.tif", "y.tif", "y.tif"])
    result = read_dataset("precomp", tmp_path)
    assert [(r.image_key, r.caption, r.caption_index) for r in result.records] == [
        ("x.tif", "x1", 0),
        ("x.tif", "x2", 1),
        ("y.tif", "y1", 0),
        ("y.tif", "y2", 1),
        ("y.tif", "y3", 2),
    ]


def test_precomp_images_default_beside_the_text_files(precomp: Path):
    assert default_images_dir("precomp", precomp) == precomp / "images"
    (precomp / "toy_images").mkdir()
    assert default_images_dir("precomp", precomp) == precomp / "toy_images"
    assert read_dataset("precomp", precomp).records[0].image_path == str(precomp / "toy_images" / "a.jpg")
    other = precomp.parent / "elsewhere"
    assert read_dataset("precomp", precomp, other).records[0].image_path == str(other / "a.jpg")


def test_precomp_count_mismatch_names_both_counts_and_files(precomp: Path):
    write_lines(precomp / "train_caps.txt", five_captions("a.jpg") + five_captions("b.jpg") + ["stray"])
    with pytest.raises(DataError) as error:
        read_dataset("precomp", precomp)
    message = str(error.value)
    assert "train_caps.txt has 11 caption lines" in message
    assert "train_filename.txt has 2 file-name lines" in message
    assert "expected 10" in message


def test_precomp_empty_caption_is_a_problem_with_line_number(precomp: Path):
    captions = five_captions("a.jpg") + five_captions("b.jpg")
    captions[6] = "   "
    write_lines(precomp / "train_caps.txt", captions)
    result = read_dataset("precomp", precomp, split="train")
    assert len(result.records) == 9
    assert [r.caption_index for r in result.records if r.image_key == "b.jpg"] == [0, 1, 2, 3]
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.item == f"{precomp / 'train_caps.txt'}:7"
    assert "empty caption" in problem.reason and "'b.jpg'" in problem.reason
    assert [(r.image_key, r.caption) for r in result.skipped] == [("b.jpg", "")]


def test_precomp_split_argument_reads_one_split(precomp: Path):
    assert {r.split for r in read_dataset("precomp", precomp, split="test").records} == {"test"}
    with pytest.raises(DataError, match="split 'val' not found.*train, test"):
        read_dataset("precomp", precomp, split="val")


def test_precomp_without_companion_file_names_it(precomp: Path):
    (precomp / "test_filename.txt").unlink()
    with pytest.raises(DataError, match="test_filename.txt"):
        read_dataset("precomp", precomp)


def test_precomp_folder_without_caption_files(tmp_path: Path):
    with pytest.raises(DataError, match="no <split>_caps.txt"):
        read_dataset("precomp", tmp_path)


def test_precomp_separate_runs_of_one_image_are_reported(tmp_path: Path):
    write_lines(tmp_path / "test_caps.txt", ["p1", "q1", "p2"])
    write_lines(tmp_path / "test_filename.txt", ["p.jpg", "q.jpg", "p.jpg"])
    result = read_dataset("precomp", tmp_path)
    assert [r.caption_index for r in result.records] == [0, 0, 1]
    assert [p.item for p in result.problems] == [f"{tmp_path / 'test_filename.txt'}:3"]


def test_precomp_parallel_arabic_captions_are_line_aligned(precomp: Path):
    arabic = [f"وصف {i}" for i in range(10)]
    write_lines(precomp / "train_caps_ar.txt", arabic)
    result = read_dataset("precomp", precomp, split="train")  # auto-detected
    ar = [r for r in result.records if r.language == "ar"]
    assert [r.caption for r in ar] == arabic
    assert [r.image_key for r in ar] == ["a.jpg"] * 5 + ["b.jpg"] * 5
    assert [r.caption_index for r in ar] == [0, 1, 2, 3, 4] * 2
    only_english = read_dataset("precomp", precomp, split="train", languages=["en"])
    assert {r.language for r in only_english.records} == {"en"}


def test_precomp_parallel_line_count_mismatch_names_both_files(precomp: Path):
    write_lines(precomp / "train_caps_ar.txt", ["وصف"] * 9)
    with pytest.raises(DataError) as error:
        read_dataset("precomp", precomp, languages=["ar"])
    message = str(error.value)
    assert "train_caps_ar.txt has 9 lines" in message and "train_caps.txt has 10" in message


def test_precomp_requested_language_without_file_is_a_problem(precomp: Path):
    result = read_dataset("precomp", precomp, split="test", languages=["ar"])
    assert [p.item for p in result.problems] == [str(precomp / "test_caps_ar.txt")]
    assert {r.language for r in result.records} == {"en"}


def test_precomp_real_rsicd_grouping(shared_datasets: Path):
    root = shared_datasets / "rsicd_precomp"
    result = read_dataset("precomp", root)
    assert result.problems == []
    assert len(result.records) == 49140 + 5465
    names = (root / "test_filename.txt").read_text().split("\n")
    test = [r for r in result.records if r.split == "test"]
    assert [r.image_key for r in test] == names[: len(test)]
    train_names = (root / "train_filename.txt").read_text().split("\n")
    train = [r for r in result.records if r.split == "train"]
    assert [r.image_key for r in train[::5]] == train_names[: len(train) // 5]
    assert train[0].caption == "many planes are parked next to a long building in an airport ."


def test_precomp_real_rsitmd_empty_captions(shared_datasets: Path):
    result = read_dataset("precomp", shared_datasets / "rsitmd_precomp", split="train")
    assert len(result.records) == 21455 - 20
    assert len(result.problems) == 20
    assert result.problems[0].item.endswith("train_caps.txt:9631")
    assert result.records[0].caption[0].isupper()  # RSITMD keeps natural case


# --------------------------------------------------------------------------- karpathy


def karpathy_json(images: list[dict]) -> str:
    return json.dumps({"images": images, "dataset": "toy"})


def test_karpathy_reads_splits_and_parallel_languages(tmp_path: Path):
    images = [
        {"filename": "1.tif", "split": "train", "sentences": [{"raw": " A Field . "}, {"raw": "b"}],
         "sentences_ar": [{"raw": "حقل"}]},
        {"filename": "2.tif", "split": "test", "sentences": [{"tokens": ["a", "road"]}, {"raw": ""}]},
    ]
    (tmp_path / "dataset_toy.json").write_text(karpathy_json(images), encoding="utf-8")
    result = read_dataset("karpathy", tmp_path, name="toy")
    assert [(r.image_key, r.caption, r.language, r.split, r.caption_index) for r in result.records] == [
        ("1.tif", "A Field .", "en", "train", 0),
        ("1.tif", "b", "en", "train", 1),
        ("1.tif", "حقل", "ar", "train", 0),
        ("2.tif", "a road", "en", "test", 0),
    ]
    assert result.records[0].image_path == str(tmp_path / "images" / "1.tif")
    items = [p.item for p in result.problems]
    assert any("images[1] (2.tif) sentences[1]" in item for item in items)  # empty raw
    assert any(item.endswith("sentences_ar") for item in items)  # 2.tif lacks Arabic
    assert [r.split for r in read_dataset("karpathy", tmp_path, split="test").records] == ["test"]


def test_karpathy_several_json_files_need_a_choice(tmp_path: Path):
    (tmp_path / "dataset.json").write_text(karpathy_json([]), encoding="utf-8")
    (tmp_path / "dataset_rsicd.json").write_text(karpathy_json([]), encoding="utf-8")
    with pytest.raises(DataError, match="several.*annotation="):
        read_dataset("karpathy", tmp_path)
    assert read_dataset("karpathy", tmp_path, annotation="dataset.json").records == []


def test_karpathy_invalid_json_names_line(tmp_path: Path):
    (tmp_path / "dataset.json").write_text('{"images": [\n{,}]}', encoding="utf-8")
    with pytest.raises(DataError, match="dataset.json: invalid JSON at line 2"):
        read_dataset("karpathy", tmp_path)


def test_karpathy_real_sydney(shared_datasets: Path):
    result = read_dataset("karpathy", shared_datasets / "sydney_karpathy")
    assert result.problems == []
    assert len(result.records) == 3065
    assert result.records[0].caption == "A residential area with houses arranged neatly ."
    assert result.records[0].dataset == "sydney_karpathy"


# --------------------------------------------------------------------------- nwpu


def test_nwpu_reads_categories_and_numbered_captions(tmp_path: Path):
    data = {
        "forest": [
            {"filename": "forest_1.jpg", "split": "train", "imgid": 0, "raw": "r0",
             "raw_2": "r2", "raw_1": "r1", "raw_3": "r3", "raw_4": "r4"},
        ],
        "airport": [
            {"filename": "airport_9.jpg", "split": "test", "imgid": 1, "raw": "s0",
             "raw_1": "", "raw_2": "s2", "raw_3": "s3", "raw_4": "s4"},
        ],
    }
    (tmp_path / "dataset_nwpu.json").write_text(json.dumps(data), encoding="utf-8")
    result = read_dataset("nwpu", tmp_path)
    forest = [r for r in result.records if r.image_key == "forest/forest_1.jpg"]
    assert [r.caption for r in forest] == ["r0", "r1", "r2", "r3", "r4"]
    assert forest[0].image_path == str(tmp_path / "forest" / "forest_1.jpg")
    airport = [r for r in result.records if r.image_key == "airport/airport_9.jpg"]
    assert [r.caption for r in airport] == ["s0", "s2", "s3", "s4"]
    assert {r.split for r in airport} == {"test"}
    assert len(result.problems) == 1 and "airport[0] (airport/airport_9.jpg) raw_1" in result.problems[0].item


def test_nwpu_rejects_other_layouts(tmp_path: Path):
    (tmp_path / "dataset_nwpu.json").write_text(json.dumps({"images": "x"}), encoding="utf-8")
    with pytest.raises(DataError, match="category"):
        read_dataset("nwpu", tmp_path)


# --------------------------------------------------------------------------- csv


def test_csv_one_row_per_caption_without_split(tmp_path: Path):
    (tmp_path / "RSICD_img_txt_pairs_test.csv").write_text(
        'filename,title\na.jpg,"a plane, parked ."\na.jpg,two planes\nb.jpg,\n', encoding="utf-8"
    )
    result = read_dataset("csv", tmp_path)
    assert [(r.image_key, r.caption, r.split, r.caption_index) for r in result.records] == [
        ("a.jpg", "a plane, parked .", None, 0),
        ("a.jpg", "two planes", None, 1),
    ]
    assert [p.item for p in result.problems] == [f"{tmp_path / 'RSICD_img_txt_pairs_test.csv'}:4"]
    assert {r.split for r in read_dataset("csv", tmp_path, split="test").records} == {"test"}


def test_csv_language_and_split_columns(tmp_path: Path):
    (tmp_path / "pairs.csv").write_text(
        "filepath,title,lang,split\nx.tif,a road,en,train\nx.tif,طريق,ar,train\ny.tif,a lake,,test\n",
        encoding="utf-8",
    )
    result = read_dataset("csv", tmp_path, images=tmp_path)
    assert [(r.image_key, r.language, r.split, r.caption_index) for r in result.records] == [
        ("x.tif", "en", "train", 0),
        ("x.tif", "ar", "train", 0),
        ("y.tif", "en", "test", 0),
    ]
    assert [r.caption for r in read_dataset("csv", tmp_path, split="test").records] == ["a lake"]
    assert {r.language for r in read_dataset("csv", tmp_path, language="ar", languages=["ar"]).records} == {"ar"}


def test_csv_tab_separated(tmp_path: Path):
    (tmp_path / "pairs.csv").write_text("filepath\ttitle\nx.tif\ta road, wide\n", encoding="utf-8")
    assert read_dataset("csv", tmp_path).records[0].caption == "a road, wide"


def test_csv_without_needed_columns(tmp_path: Path):
    (tmp_path / "pairs.csv").write_text("image,text\nx.tif,a road\n", encoding="utf-8")
    with pytest.raises(DataError, match="pairs.csv: columns .* rename the header"):
        read_dataset("csv", tmp_path)


# --------------------------------------------------------------------------- malformed annotations (issue 25)


def test_precomp_reads_cr_only_crlf_and_mixed_line_endings(precomp: Path):
    for path, eol in ((precomp / "test_caps.txt", b"\r"), (precomp / "test_filename.txt", b"\r\n")):
        path.write_bytes(path.read_bytes().replace(b"\n", eol))
    (precomp / "train_caps.txt").write_bytes(b"a0\ra1\r\na2\na3\ra4\nb0\nb1\nb2\nb3\nb4")  # no final newline
    result = read_dataset("precomp", precomp)
    assert result.problems == []
    test = [r for r in result.records if r.split == "test"]
    assert [r.image_key for r in test] == ["c.jpg"] * 5 + ["d.jpg"] * 5
    assert [r.caption for r in result.records if r.image_key == "a.jpg"] == ["a0", "a1", "a2", "a3", "a4"]


def test_precomp_zero_byte_split_names_both_files(precomp: Path):
    (precomp / "test_caps.txt").write_bytes(b"")
    (precomp / "test_filename.txt").write_bytes(b"\xef\xbb\xbf")  # a BOM and nothing else
    with pytest.raises(DataError, match=r"test_caps.txt and test_filename.txt are empty.*'test' split"):
        read_dataset("precomp", precomp)
    assert len(read_dataset("precomp", precomp, split="train").records) == 10


@pytest.mark.parametrize("format,name", [("karpathy", "dataset.json"), ("nwpu", "dataset_nwpu.json"),
                                         ("csv", "captions.csv")])
def test_zero_byte_json_and_csv_annotations_are_named(tmp_path: Path, format: str, name: str):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match=rf"{name} is empty \(0 bytes\); restore it"):
        read_dataset(format, tmp_path)


def test_precomp_image_listed_twice_keeps_its_first_listing(tmp_path: Path):
    write_lines(tmp_path / "train_filename.txt", ["a.jpg", "b.jpg", "a.jpg"])
    write_lines(tmp_path / "train_caps.txt", five_captions("a.jpg") + five_captions("b.jpg") + five_captions("x"))
    result = read_dataset("precomp", tmp_path)
    assert [r.caption for r in result.records if r.image_key == "a.jpg"] == five_captions("a.jpg")
    assert [(p.item, p.kind) for p in result.problems] == [(f"{tmp_path / 'train_filename.txt'}:3", "duplicate image")]
    assert "first at" in result.problems[0].reason and ":1)" in result.problems[0].reason


def test_karpathy_and_nwpu_image_listed_twice_in_a_split(tmp_path: Path):
    images = [{"filename": "a.jpg", "split": "test", "sentences": [{"raw": "one"}]},
              {"filename": "a.jpg", "split": "test", "sentences": [{"raw": "two"}]},
              {"filename": "a.jpg", "split": "train", "sentences": [{"raw": "three"}]}]  # another split: ingest decides
    (tmp_path / "dataset.json").write_text(karpathy_json(images), encoding="utf-8")
    result = read_dataset("karpathy", tmp_path)
    assert [r.caption for r in result.records] == ["one", "three"]
    assert [p.kind for p in result.problems] == ["duplicate image"] and "images[1]" in result.problems[0].item
    nwpu = {"lake": [{"filename": "l.jpg", "split": "test", "raw": "one"}, {"filename": "l.jpg", "split": "test", "raw": "two"}]}
    (tmp_path / "dataset_nwpu.json").write_text(json.dumps(nwpu), encoding="utf-8")
    result = read_dataset("nwpu", tmp_path)
    assert [r.caption for r in result.records] == ["one"] and [p.kind for p in result.problems] == ["duplicate image"]


@pytest.mark.parametrize("key", ["../x.jpg", "a/../../x.jpg", "..\\x.jpg", "/etc/passwd", "C:\\x.jpg", "\\\\host\\x.jpg",
                                 "a\x00.jpg", "a\r.jpg", "a\n.jpg"])
def test_unsafe_image_names_are_refused(key: str):
    assert unsafe_image_key(key) is not None


@pytest.mark.parametrize("key", ["x.jpg", "forest/forest_1.jpg", "a..b.jpg", "..x.jpg", "Ünïcode bild.tif"])
def test_ordinary_image_names_pass(key: str):
    assert unsafe_image_key(key) is None


def test_unsafe_names_get_no_path_and_one_problem_per_image(tmp_path: Path):
    write_lines(tmp_path / "test_caps.txt", five_captions("c") + five_captions("evil"))
    write_lines(tmp_path / "test_filename.txt", ["c.jpg"] * 5 + ["../../evil.jpg"] * 5)
    result = read_dataset("precomp", tmp_path)
    assert {r.image_key for r in result.records} == {"c.jpg"} and result.skipped == []
    [problem] = result.problems
    assert problem.kind == "unsafe image path" and problem.item == f"{tmp_path / 'test_filename.txt'}:6"
    assert "'..'" in problem.reason and "5 caption(s) dropped" in problem.reason
    assert result.declared_splits == ["test"]


def test_a_non_text_split_is_a_problem_not_a_crash(tmp_path: Path):
    images = [{"filename": "a.jpg", "split": ["test"], "sentences": [{"raw": "one"}]},
              {"filename": "b.jpg", "split": "test", "sentences": [{"raw": "two"}]}]
    (tmp_path / "dataset.json").write_text(karpathy_json(images), encoding="utf-8")
    result = read_dataset("karpathy", tmp_path)
    assert [r.image_key for r in result.records] == ["b.jpg"]
    assert "'split' is list, not text" in result.problems[0].reason
