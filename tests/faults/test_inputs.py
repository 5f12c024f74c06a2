"""Trial 9: inputs accepted that should not be, or rejected without help.

Scientific notation is a number; out-of-range weights, steps and devices exit 2 naming the
key; search refuses an empty query, a top-k out of range and zero candidates; a 0-byte
gallery image is skipped and named instead of aborting the index build.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from conftest import one_line_error, rsitr
from rsitr.app.serving.gallery import check_query, readable_images
from rsitr.config import load_params
from rsitr.errors import ConfigError, DataError

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_scientific_notation_is_a_number() -> None:
    assert load_params(REPO_PARAMS, ["train.lr=5e-4"]).train.lr == pytest.approx(5e-4)


@pytest.mark.parametrize(("override", "message"), [
    ("train.warmup_share=-0.1", "train.warmup_share: expected a value >= 0"),
    ("train.device=tpu", "train.device: 'tpu' is not a device"),
    ("variants.petl.options.weights.cross=-1", "weights.cross: expected a value >= 0"),
    ("variants.ebaker.options.mlm_weight=-0.5", "mlm_weight: expected a value >= 0"),
    ("c2f.candidates=0", "c2f.candidates: expected a value >= 1"),
])
def test_out_of_range_values_exit_2_naming_the_key(override: str, message: str) -> None:
    done = rsitr("config", "show", "--params", str(REPO_PARAMS), "--set", override)
    assert message in one_line_error(done)


@pytest.mark.parametrize(("text", "top_k", "candidates", "message"), [
    ("", 10, None, "the text query is empty"),
    ("   ", 10, None, "the text query is empty"),
    ("a river", -3, None, "--top-k must be between 1"),
    ("a river", 10, 0, "--candidates must be at least 1"),
])
def test_search_refuses_queries_that_mean_nothing(text: str, top_k: int, candidates: int | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_query(text, None, top_k, candidates)


def test_the_cli_search_says_it_in_one_line(tmp_path: Path) -> None:
    done = rsitr("search", "--params", str(REPO_PARAMS), "--index", str(tmp_path), "")
    assert "the text query is empty" in one_line_error(done)


def test_a_zero_byte_gallery_image_is_skipped_and_named(tmp_path: Path, caplog) -> None:
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8), (10, 200, 30)).save(good)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    ids, paths = readable_images(["good.png", "empty.jpg"], [str(good), str(empty)])
    assert ids == ["good.png"] and paths == [str(good)]
    assert "skipped 1 unreadable image(s): empty.jpg" in caplog.text  # a warning of rsitr's logger
    with pytest.raises(DataError, match="none of the 1 gallery images"):
        readable_images(["empty.jpg"], [str(empty)])
