"""The transforms that turn an image into a planted near-duplicate copy.

As when a benchmark image is re-published elsewhere: re-encoded as JPEG at
quality 75, resized by 10-20 % up or down, or made 10 % brighter or darker. The
result stays within pHash distance 2 of the source (the generator checks it).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

TRANSFORM_KINDS: tuple[str, ...] = ("jpeg", "resize", "brightness")
REENCODE_QUALITY: int = 75
BRIGHTNESS_SHIFT: float = 0.1


@dataclass(frozen=True)
class Transform:
    """One near-duplicate transform: ``kind`` and its parameter."""

    kind: str
    value: float  # JPEG quality, resize factor or brightness factor

    def to_json(self) -> dict[str, "str | float"]:
        return {"kind": self.kind, "value": self.value}


def draw_transform(rng: np.random.Generator) -> Transform:
    """A random transform: kind uniformly, then its parameter."""
    kind = TRANSFORM_KINDS[int(rng.integers(len(TRANSFORM_KINDS)))]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    if kind == "jpeg":
        return Transform(kind, float(REENCODE_QUALITY))
    if kind == "resize":
        return Transform(kind, round(1.0 + sign * float(rng.uniform(0.1, 0.2)), 3))
    return Transform(kind, round(1.0 + sign * BRIGHTNESS_SHIFT, 3))


def apply_transform(image: Image.Image, transform: Transform) -> Image.Image:
    """The transformed copy of ``image`` (RGB)."""
    if transform.kind == "jpeg":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(transform.value))
        with Image.open(io.BytesIO(buffer.getvalue())) as reencoded:
            return reencoded.convert("RGB")
    if transform.kind == "resize":
        side = max(8, round(image.width * transform.value))
        return image.resize((side, side), Image.Resampling.BICUBIC)
    if transform.kind == "brightness":
        pixels = np.asarray(image, dtype=np.float32) * np.float32(transform.value)
        return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "RGB")
    raise ValueError(f"unknown near-duplicate transform {transform.kind!r}; valid: {', '.join(TRANSFORM_KINDS)}")
