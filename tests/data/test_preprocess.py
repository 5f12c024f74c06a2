"""rsitr's image tensors are open_clip's: ``create_model_and_transforms(...)[2]`` on the same images.

Every architecture rsitr ships (``src/rsitr/models/model_configs``) and the tests' own, plus
``local-dir:`` models whose ``open_clip_config.json`` asks for ``squash`` / ``longest`` resizing,
bilinear interpolation and a fill colour, on images of several shapes and modes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from rsitr.config import load_params
from rsitr.data.images import ImageLoader
from rsitr.models import build_model
from rsitr.models.factory import MODEL_CONFIG_DIR, build_clip, register_model_configs

TESTS = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json")) + sorted(
    p.stem for p in (TESTS / "model_configs").glob("*.json"))
MICRO = json.loads((TESTS / "model_configs" / "rsitr-test-micro.json").read_text(encoding="utf-8"))
NON_DEFAULT = {
    "squash": {"resize_mode": "squash", "interpolation": "bilinear"},
    "longest": {"resize_mode": "longest", "fill_color": 127, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]},
    "shortest-bilinear": {"resize_mode": "shortest", "interpolation": "bilinear"},
}


def _images(folder: Path) -> list[Path]:
    """Landscape, portrait, odd-sized, grayscale and palette files (odd sizes exercise rounding)."""
    rng = np.random.default_rng(0)
    shapes = [(37, 61, "RGB"), (90, 45, "RGB"), (33, 33, "RGB"), (50, 71, "L"), (64, 40, "P")]
    paths = []
    for i, (h, w, mode) in enumerate(shapes):
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        image = Image.fromarray(pixels, "RGB")
        image = image.convert(mode) if mode == "L" else image.quantize(32) if mode == "P" else image
        path = folder / f"img{i}.png"
        image.save(path)
        paths.append(path)
    return paths


def _assert_same(arch: str, loader: ImageLoader, images: list[Path]) -> None:
    reference = open_clip.create_model_and_transforms(arch, pretrained=None)[2]
    for path in images:
        with Image.open(path) as image:
            expected = reference(image)  # [3, H, W]
        got = loader.normalize(loader.uint8(str(path)))
        assert got.shape == expected.shape, (arch, path.name)
        assert torch.allclose(got, expected, rtol=0, atol=1e-6), (arch, path.name, (got - expected).abs().max())


@pytest.mark.parametrize("arch", SHIPPED)
def test_shipped_architectures_preprocess_as_open_clip(arch: str, tmp_path: Path, repo_root: Path) -> None:
    register_model_configs()
    params = load_params(repo_root / "params.yaml", [f"model.arch={arch}", "model.pretrained="])
    model = build_model(params, "zeroshot")
    _assert_same(arch, ImageLoader.for_model(model, cache=False), _images(tmp_path))


def _local_dir(folder: Path, preprocess: dict) -> str:
    folder.mkdir()
    config = {"model_cfg": MICRO, "preprocess_cfg": preprocess}
    (folder / "open_clip_config.json").write_text(json.dumps(config), encoding="utf-8")
    return f"local-dir:{folder}"


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_non_default_preprocess_cfg_is_followed(name: str, tmp_path: Path, repo_root: Path) -> None:
    arch = _local_dir(tmp_path / "model", NON_DEFAULT[name])
    params = load_params(repo_root / "params.yaml", [f"model.arch={arch}", "model.pretrained="])
    bundle = build_clip(params.model, load_weights=False)
    assert bundle.preprocess.resize_mode == NON_DEFAULT[name]["resize_mode"]
    loader = ImageLoader.from_cfg(bundle.preprocess, cache=True)
    images = _images(tmp_path)
    _assert_same(arch, loader, images)
    _assert_same(arch, loader, images)  # from the uint8 cache


def test_squash_keeps_the_whole_image(tmp_path: Path) -> None:
    """Squash resizes without cropping: a wide image's red left edge survives (shortest crops it away)."""
    pixels = np.zeros((32, 96, 3), dtype=np.uint8)
    pixels[:, :16] = (255, 0, 0)
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    squash = ImageLoader(32, (0.0,) * 3, (1.0,) * 3, resize_mode="squash").uint8(str(path))
    shortest = ImageLoader(32, (0.0,) * 3, (1.0,) * 3).uint8(str(path))
    assert squash[0, :, 0].float().mean() > 200
    assert shortest[0, :, 0].float().mean() < 50


def test_pil_pixels_match_open_clip(tmp_path: Path) -> None:
    register_model_configs()
    reference = open_clip.create_model_and_transforms("rsitr-tiny", pretrained=None)[2]
    loader = ImageLoader(64, open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (70, 99, 3), dtype=np.uint8))
    assert torch.equal(loader.pixels(image), reference(image))
