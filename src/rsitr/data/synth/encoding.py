"""Deterministic image encoding: JPEG for the precomp set, TIFF for the Karpathy set.

Images are encoded in memory so the generator can hash exactly the bytes it
writes. Pillow writes no timestamps in either format, so the same pixels give
the same bytes (for a given Pillow / libjpeg build).
"""

from __future__ import annotations

import io

from PIL import Image

JPEG_QUALITY: int = 90


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buffer.getvalue()


def encode_tiff(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="TIFF")
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    """Decode encoded bytes to an RGB image, as a loader reading the file would."""
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def encode_for(filename: str, image: Image.Image) -> bytes:
    """Encode ``image`` in the format its file name's extension names."""
    if filename.endswith(".jpg"):
        return encode_jpeg(image)
    if filename.endswith(".tif"):
        return encode_tiff(image)
    raise ValueError(f"no encoder for {filename!r}; expected a .jpg or .tif name")
