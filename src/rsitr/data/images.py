"""Image loading, verification, and model-input preprocessing (open_clip's transform, augmentation).

``verify_images`` opens *and fully decodes* every image (a header-only check misses
truncated JPEGs and broken TIFF strips), in parallel threads: Pillow releases the GIL
while decoding, so threads scale without pickling images between processes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import Compose, Normalize, ToTensor

from rsitr.config.schema import AugmentParams
from rsitr.errors import DataError

MISSING_FILE = "missing file"
CANNOT_DECODE = "cannot decode"


def _decode_rgb(path: str | Path) -> Image.Image:
    """Open and fully decode ``path`` as RGB; raises what Pillow raises."""
    with Image.open(path) as image:
        return image.convert("RGB")  # convert() loads every pixel


def image_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be used as an RGB image, or None when it decodes."""
    if not os.path.isfile(path):
        return MISSING_FILE
    try:
        _decode_rgb(path)
    except Exception as exc:  # Pillow raises many types (OSError, SyntaxError, ValueError, DecompressionBombError...)
        return f"{CANNOT_DECODE}: {type(exc).__name__}: {exc}"
    return None


def verify_images(paths: Sequence[str], workers: int = 2) -> dict[str, str | None]:
    """Decode every image; map each path (input order, repeats once) to its problem or None."""
    unique = list(dict.fromkeys(str(path) for path in paths))
    if workers <= 1 or len(unique) <= 1:
        return {path: image_problem(path) for path in unique}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(unique, pool.map(image_problem, unique)))


def load_rgb(path: str | Path) -> Image.Image:
    """The image at ``path`` as a decoded RGB ``PIL.Image``; DataError naming the path on failure."""
    if not os.path.isfile(path):
        raise DataError(f"image {path}: missing file; check the images folder setting or restore the file")
    try:
        return _decode_rgb(path)
    except Exception as exc:
        raise DataError(
            f"image {path}: {CANNOT_DECODE} ({type(exc).__name__}: {exc}); "
            "re-download the file or drop it from the dataset"
        ) from exc


# --------------------------------------------------------------------------- model inputs


def preprocess_cfg(source: PreprocessCfg | Mapping[str, Any]) -> PreprocessCfg:
    """open_clip's ``PreprocessCfg`` from a model's ``visual.preprocess_cfg`` dict (unknown keys dropped)."""
    if isinstance(source, PreprocessCfg):
        return source
    return PreprocessCfg(**merge_preprocess_dict(PreprocessCfg(), dict(source)))


class ImageLoader:
    """A model's evaluation preprocessing, exactly open_clip's (``image_transform_v2(cfg, is_train=False)``).

    open_clip's own transform (resize mode, interpolation, crop or pad with ``fill_color``, RGB) runs
    up to the uint8 crop; its ``ToTensor`` + ``Normalize`` then run on that uint8 tensor. Splitting
    there is what lets training cache small sets as uint8 and flip/rotate them before normalising;
    the output is bit-identical to ``preprocess(image)`` (``ToTensor`` is ``uint8 / 255`` in float32,
    then the same ``Normalize`` module; tests/data/test_preprocess.py compares them).
    """

    def __init__(self, image_size: int | tuple[int, int], mean: Sequence[float], std: Sequence[float],
                 cache: bool = True, *, resize_mode: str = "shortest", interpolation: str = "bicubic",
                 fill_color: int = 0):
        self.cfg = PreprocessCfg(size=image_size, mean=tuple(mean), std=tuple(std), resize_mode=resize_mode,
                                 interpolation=interpolation, fill_color=fill_color)
        steps = image_transform_v2(self.cfg, is_train=False).transforms
        cut = next(i for i, step in enumerate(steps) if isinstance(step, ToTensor))
        self.geometry = Compose(steps[:cut])  # PIL -> PIL: resize, crop/pad, convert("RGB")
        self._normalize = next(step for step in steps[cut:] if isinstance(step, Normalize))
        self.cache: dict[str, torch.Tensor] | None = {} if cache else None

    @classmethod
    def from_cfg(cls, cfg: PreprocessCfg | Mapping[str, Any], cache: bool = True) -> ImageLoader:
        cfg = preprocess_cfg(cfg)
        return cls(cfg.size, cfg.mean, cfg.std, cache, resize_mode=cfg.resize_mode,
                   interpolation=cfg.interpolation, fill_color=cfg.fill_color)

    @classmethod
    def for_model(cls, model: Any, cache: bool = True) -> ImageLoader:
        """The preprocessing of ``model`` (``model.preprocess``: the open_clip config it was built with)."""
        cfg = getattr(model, "preprocess", None)
        if cfg is None:  # a stand-in model with only size and mean/std: open_clip's defaults otherwise
            return cls(model.image_size, model.mean, model.std, cache)
        return cls.from_cfg(cfg, cache)

    @property
    def image_size(self) -> int:
        size = self.cfg.size
        return int(size if isinstance(size, int) else size[0])

    def pil_uint8(self, image: Image.Image) -> torch.Tensor:
        """``[3, H, W]`` uint8 of a PIL image after open_clip's resize and crop."""
        array = np.array(self.geometry(image), dtype=np.uint8, copy=True)  # [H, W, 3]
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()  # [3, H, W]

    def uint8(self, path: str) -> torch.Tensor:
        """``[3, H, W]`` uint8 of the image file at ``path`` (cached when the loader caches)."""
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        try:
            with Image.open(path) as image:
                image.load()  # decoded as stored: open_clip converts to RGB after resizing, so rsitr does too
                tensor = self.pil_uint8(image)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {path!r} ({exc}); re-run `rsitr data ingest` to list bad files") from None
        if self.cache is not None:
            self.cache[path] = tensor
        return tensor

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """uint8 ``[3, H, W]`` -> float ``[3, H, W]``: open_clip's ``ToTensor`` scaling, then its ``Normalize``."""
        return self._normalize(image.to(torch.float32).div(255))  # [3, H, W]

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """``preprocess(image)`` of open_clip: normalised float ``[3, H, W]`` of a PIL image."""
        return self.normalize(self.pil_uint8(image))


def augment(image: torch.Tensor, rng: np.random.Generator, options: AugmentParams) -> torch.Tensor:
    """Random flips and 90 degree rotations of a ``[3, H, W]`` image (half turns only when H != W)."""
    if options.hflip and rng.random() < 0.5:
        image = image.flip(-1)
    if options.vflip and rng.random() < 0.5:
        image = image.flip(-2)
    if options.rot90:
        turns = int(rng.integers(0, 4))
        if image.shape[-1] != image.shape[-2]:
            turns = 2 * (turns % 2)  # a quarter turn would change a non-square input's shape
        if turns:
            image = torch.rot90(image, turns, dims=(-2, -1))
    return image


class EvalImages(Dataset):
    """The normalised images of a split, in order (evaluation and gallery encoding)."""

    def __init__(self, paths: Sequence[str], loader: ImageLoader):
        self.paths = list(paths)
        self.loader = loader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.loader.normalize(self.loader.uint8(self.paths[index]))
