"""The ``image`` column of the registered pyfunc model: base64, data URL, raw bytes or a path."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from rsitr.errors import DataError
from rsitr.tracking.pyfunc_model import encode_image_file, image_source


def _png(path: Path) -> bytes:
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return path.read_bytes()


def _pixel(source) -> tuple[int, int, int]:
    with Image.open(source) as image:
        return image.convert("RGB").getpixel((0, 0))


def test_every_image_encoding_decodes_to_the_same_image(tmp_path: Path) -> None:
    raw = _png(tmp_path / "red.png")
    encoded = encode_image_file(tmp_path / "red.png")
    assert base64.b64decode(encoded) == raw
    for value in (encoded, f"data:image/png;base64,{encoded}", raw, str(tmp_path / "red.png"), f"  {encoded}\n"):
        assert _pixel(image_source(value)) == (200, 30, 30)
    assert image_source(str(tmp_path / "red.png")) == str(tmp_path / "red.png")
    assert isinstance(image_source(encoded), io.BytesIO)


def test_a_value_that_is_neither_a_file_nor_base64_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="neither an existing file nor base64"):
        image_source(str(tmp_path / "missing.png"))
    with pytest.raises(DataError, match="neither an existing file nor base64"):
        image_source("x" * 300 + "!")  # a too-long "file name" must not raise OSError
