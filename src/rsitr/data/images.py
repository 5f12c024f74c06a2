"""Image loading, verification, and model-input preprocessing (resize, crop, normalise, augment).

``verify_images`` opens *and fully decodes* every image (a header-only check misses
truncated JPEGs and broken TIFF strips), in parallel threads: Pillow releases the GIL
while decoding, so threads scale without pickling images between processes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

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


class ImageLoader:
    """Decode, resize (shorter side, bicubic), centre-crop and normalise images; caches small sets."""

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], cache: bool = True):
        self.image_size = image_size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.cache: dict[str, torch.Tensor] | None = {} if cache else None

    def uint8(self, path: str) -> torch.Tensor:
        """``[3, S, S]`` uint8."""
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                width, height = image.size
                scale = self.image_size / min(width, height)
                size = (max(self.image_size, round(width * scale)), max(self.image_size, round(height * scale)))
                image = image.resize(size, Image.Resampling.BICUBIC)
                left = (size[0] - self.image_size) // 2
                top = (size[1] - self.image_size) // 2
                image = image.crop((left, top, left + self.image_size, top + self.image_size))
                array = np.asarray(image, dtype=np.uint8).copy()
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {path!r} ({exc}); re-run `rsitr data ingest` to list bad files") from None
        tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()  # [3, S, S]
        if self.cache is not None:
            self.cache[path] = tensor
        return tensor

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image.float() / 255.0 - self.mean) / self.std  # [3, S, S]


def augment(image: torch.Tensor, rng: np.random.Generator, options: AugmentParams) -> torch.Tensor:
    """Random flips and 90 degree rotations of a ``[3, S, S]`` image."""
    if options.hflip and rng.random() < 0.5:
        image = image.flip(-1)
    if options.vflip and rng.random() < 0.5:
        image = image.flip(-2)
    if options.rot90:
        turns = int(rng.integers(0, 4))
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
