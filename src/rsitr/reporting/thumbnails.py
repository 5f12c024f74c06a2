"""Square thumbnails of test images, as PIL images or inline ``data:`` URLs (JPEG, small)."""

from __future__ import annotations

import base64
import io
from functools import lru_cache

from PIL import Image, ImageOps


@lru_cache(maxsize=512)
def thumbnail(path: str, size: int) -> Image.Image:
    """The image scaled and centre-cropped to ``size`` x ``size`` RGB."""
    with Image.open(path) as image:
        return ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BICUBIC)


def data_url(path: str, size: int) -> str:
    """``data:image/jpeg;base64,...`` of the thumbnail: the HTML page needs no other file."""
    buffer = io.BytesIO()
    thumbnail(path, size).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
