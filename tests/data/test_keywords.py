"""Keywords: hand-checked counts, stopwords/digits/punctuation removed, Arabic normalised."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rsitr.config import params_from_dict
from rsitr.data.keywords import count_words, extract_keywords, tokenize
from rsitr.app.steps.keywords import run_keywords


def _rows(dataset: str, language: str, split: str, captions: list[str]) -> list[dict]:
    return [
        {"dataset": dataset, "image_id": f"{dataset}/{i}", "language": language, "caption": text, "split": split}
        for i, text in enumerate(captions)
    ]


def _manifest() -> pd.DataFrame:
    rows = _rows(
        "alpha",
        "en",
        "train",
        [
            "Many green trees are near the river.",
            "The river, with 2 bridges, is near trees!",
            "A bridge over the RIVER at 10km",
        ],
    )
    rows += _rows("alpha", "en", "test", ["airport airport airport runway"])  # test text never counts
    rows += _rows("beta", "en", "train", ["green fields and a river", "fields, fields"])
    rows += _rows("alpha", "ar", "train", ["أشجار خضراء قرب النهر", "اشجار كثيرة في المدينة", "النَّهرُ والجسر ١٢٣"])
    return pd.DataFrame(rows)


def test_tokenize_drops_stopwords_digits_punctuation_and_short_words() -> None:
    assert tokenize("The river, with 2 bridges, is near trees!", "en") == ["river", "bridges", "near", "trees"]
    assert tokenize("A bridge over the RIVER at 10km", "en") == ["bridge", "river", "km"]
    assert tokenize("A bridge over the RIVER at 10km", "en", min_length=3) == ["bridge", "river"]
    assert tokenize("no-fly zone's x", "en") == ["fly", "zone"]


def test_arabic_is_normalised_and_its_stopwords_removed() -> None:
    # alef with hamza -> bare alef, tashkeel stripped, Arabic-Indic digits and stopword في dropped
    assert tokenize("أشجار النَّهرُ في ١٢٣ المدينة", "ar") == ["اشجار", "النهر", "المدينة"]
    assert tokenize("أشجار", "ar", normalize_arabic=False) == ["أشجار"]
    assert tokenize("يوجد نهر إلى الشمال", "ar") == ["نهر", "الشمال"]  # إلى is caught after normalising too
    assert count_words(["أشجار خضراء", "اشجار"], "ar") == {"اشجار": 2, "خضراء": 1}


def test_counts_top_k_and_merged_order_are_hand_checked() -> None:
    result = extract_keywords(_manifest(), top_k=3, min_length=2)
    # alpha/en train: river 3, trees 2, near 2, many 1, green 1, bridges 1, bridge 1, km 1
    assert result.per_dataset["alpha"]["en"] == {"river": 3, "near": 2, "trees": 2}
    # beta/en train: fields 3, green 1, river 1
    assert result.per_dataset["beta"]["en"] == {"fields": 3, "green": 1, "river": 1}
    # alpha/ar train (normalised; قرب and في are stopwords): اشجار 2, النهر 2, then count-1 words by code point
    assert result.per_dataset["alpha"]["ar"] == {"اشجار": 2, "النهر": 2, "المدينة": 1}
    assert "airport" not in result.merged and "runway" not in result.merged
    # totals over train: river 4, fields 3, near 2, trees 2, green 2 -> by count, then word
    assert result.per_language["en"] == ["river", "fields", "green", "near", "trees"]
    assert result.per_language["ar"] == ["اشجار", "النهر", "المدينة"]
    assert result.merged == ["river", "fields", "green", "near", "trees", "اشجار", "النهر", "المدينة"]


def test_stage_writes_the_keyword_files(tmp_path: Path) -> None:
    data = tmp_path / "data" / "processed"
    data.mkdir(parents=True)
    _manifest().to_parquet(data / "manifest.parquet", index=False)
    processed = tmp_path / "models" / "keywords"  # the keywords step is model work: under paths.models
    processed.mkdir(parents=True)
    (processed / "keywords_xx.txt").write_text("stale\n", encoding="utf-8")
    params = params_from_dict({"paths": {"data": str(tmp_path / "data"), "models": str(tmp_path / "models")},
                               "keywords": {"top_k": 2, "min_length": 2}})
    report = run_keywords(params)

    payload = json.loads((processed / "keywords.json").read_text(encoding="utf-8"))
    assert payload["top_k"] == 2
    assert payload["per_dataset"]["beta"]["en"] == {"fields": 3, "green": 1}
    lines = (processed / "keywords.txt").read_text(encoding="utf-8").splitlines()
    assert lines == payload["merged"]
    assert lines[:2] == ["river", "fields"]
    assert (processed / "keywords_en.txt").read_text(encoding="utf-8").splitlines() == payload["per_language"]["en"]
    assert (processed / "keywords_ar.txt").is_file()
    assert not (processed / "keywords_xx.txt").exists()
    assert report["train_captions"] == {"alpha": {"ar": 3, "en": 3}, "beta": {"en": 2}}
    assert report == json.loads((processed / "report.json").read_text(encoding="utf-8"))
