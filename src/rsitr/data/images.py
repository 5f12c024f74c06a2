"""Image loading and verification.

``verify_images`` opens *and fully decodes* every image (a header-only check misses
truncated JPEGs and broken TIFF strips), in parallel threads: Pillow releases the GIL
while decoding, so threads scale without pickling images between processes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from PIL import Image

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
