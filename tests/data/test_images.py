"""Image verification and loading: real sample images, missing, corrupt and truncated files."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from rsitr.data.images import MISSING_FILE, load_rgb, verify_images
from rsitr.errors import DataError


@pytest.fixture
def good_jpg(tmp_path: Path) -> Path:
    path = tmp_path / "good.jpg"
    Image.new("RGB", (32, 24), (10, 200, 30)).save(path)
    return path


@pytest.fixture
def garbage_jpg(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.jpg"
    path.write_bytes(b"this is not a jpeg at all" * 10)
    return path


@pytest.fixture
def truncated_jpg(tmp_path: Path) -> Path:
    """A JPEG whose header parses but whose pixel data is cut short."""
    path = tmp_path / "truncated.jpg"
    noise = Image.effect_noise((128, 128), 64).convert("RGB")
    noise.save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_real_sample_images_verify(shared_datasets: Path):
    paths = sorted(str(p) for folder in ("rsicd", "ucm") for p in (shared_datasets / "samples" / folder).iterdir())
    assert any(p.endswith(".jpg") for p in paths) and any(p.endswith(".tif") for p in paths)
    result = verify_images(paths, workers=2)
    assert list(result) == paths
    assert result == {p: None for p in paths}


def test_real_tif_loads_as_rgb(shared_datasets: Path):
    image = load_rgb(shared_datasets / "samples" / "ucm" / "1.tif")
    assert image.mode == "RGB" and image.size == (256, 256)


def test_missing_corrupt_and_truncated_are_reported(tmp_path: Path, good_jpg, garbage_jpg, truncated_jpg):
    missing = str(tmp_path / "absent.jpg")
    paths = [str(good_jpg), missing, str(garbage_jpg), str(truncated_jpg), str(good_jpg)]
    result = verify_images(paths, workers=2)
    assert list(result) == [str(good_jpg), missing, str(garbage_jpg), str(truncated_jpg)]
    assert result[str(good_jpg)] is None
    assert result[missing] == MISSING_FILE
    assert result[str(garbage_jpg)].startswith("cannot decode: ")
    assert result[str(truncated_jpg)].startswith("cannot decode: ")  # a header-only check would pass it
    assert verify_images(paths, workers=1) == result


def test_load_rgb_converts_modes(tmp_path: Path):
    path = tmp_path / "grey.png"
    Image.new("L", (5, 7), 128).save(path)
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (5, 7) and image.getpixel((0, 0)) == (128, 128, 128)


def test_load_rgb_errors_name_the_path(tmp_path: Path, garbage_jpg):
    with pytest.raises(DataError, match=f"image {tmp_path / 'absent.jpg'}: missing file"):
        load_rgb(tmp_path / "absent.jpg")
    with pytest.raises(DataError, match=f"image {garbage_jpg}: cannot decode"):
        load_rgb(garbage_jpg)
