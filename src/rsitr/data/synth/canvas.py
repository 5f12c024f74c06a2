"""A float RGB canvas addressed in fractions of the image side, with mask painting.

Shapes are painted as soft masks (values in [0, 1]) and blended over what is
already there; scenes are rendered at twice the output size and reduced, which
anti-aliases the edges.
"""

from __future__ import annotations

from typing import Union

import numpy as np
from PIL import Image

Colour = Union[tuple[float, float, float], np.ndarray]


class Canvas:
    """``pixels`` is an (n, n, 3) float32 array; ``x``/``y`` are pixel-centre coordinates in [0, 1]."""

    def __init__(self, size: int, base: Colour) -> None:
        self.size = size
        centres = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.x = centres[None, :]
        self.y = centres[:, None]
        self.pixels = np.empty((size, size, 3), dtype=np.float32)
        self.pixels[...] = np.asarray(base, dtype=np.float32)

    def blend(self, mask: np.ndarray, colour: Colour, opacity: float = 1.0) -> None:
        """Blend ``colour`` (RGB or a per-pixel (n, n, 3) array) where ``mask`` > 0."""
        weight = (np.clip(mask, 0.0, 1.0) * opacity).astype(np.float32)[..., None]
        self.pixels += weight * (np.asarray(colour, dtype=np.float32) - self.pixels)

    def scale(self, mask: np.ndarray, factor: float) -> None:
        """Darken (factor < 1) or lighten (factor > 1) the pixels under ``mask``."""
        weight = np.clip(mask, 0.0, 1.0).astype(np.float32)[..., None]
        self.pixels *= 1.0 + weight * (factor - 1.0)

    def window(self, cx: float, cy: float, radius: float) -> "tuple[slice, slice, np.ndarray, np.ndarray]":
        """Pixel window around (cx, cy) and its coordinates relative to the centre."""
        low_x = max(0, int((cx - radius) * self.size) - 1)
        high_x = min(self.size, int((cx + radius) * self.size) + 2)
        low_y = max(0, int((cy - radius) * self.size) - 1)
        high_y = min(self.size, int((cy + radius) * self.size) + 2)
        rows, cols = slice(low_y, high_y), slice(low_x, high_x)
        return rows, cols, self.x[:, cols] - cx, self.y[rows, :] - cy

    def blend_window(self, rows: slice, cols: slice, mask: np.ndarray, colour: Colour,
                     opacity: float = 1.0) -> None:
        """Like :meth:`blend` for a mask computed on a :meth:`window`."""
        patch = self.pixels[rows, cols]
        weight = (np.clip(mask, 0.0, 1.0) * opacity).astype(np.float32)[..., None]
        patch += weight * (np.asarray(colour, dtype=np.float32) - patch)

    def scale_window(self, rows: slice, cols: slice, mask: np.ndarray, factor: float) -> None:
        patch = self.pixels[rows, cols]
        weight = np.clip(mask, 0.0, 1.0).astype(np.float32)[..., None]
        patch *= 1.0 + weight * (factor - 1.0)

    def to_image(self, output_size: int) -> Image.Image:
        """Reduce to ``output_size`` (box filter) and return an RGB image."""
        array = np.clip(self.pixels, 0.0, 255.0).round().astype(np.uint8)
        image = Image.fromarray(array, "RGB")
        if output_size != self.size:
            image = image.resize((output_size, output_size), Image.Resampling.BOX)
        return image


def soft_inside(distance_outside: np.ndarray, softness: float) -> np.ndarray:
    """Mask from a signed distance (negative inside): 1 inside, 0 outside, a ramp of ``softness``."""
    return np.clip(0.5 - distance_outside / softness, 0.0, 1.0)


def rotate(dx: np.ndarray, dy: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (u along the heading, v across it) of offsets (dx, dy)."""
    theta = np.deg2rad(degrees)
    cos, sin = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    return dx * cos + dy * sin, -dx * sin + dy * cos


def box_distance(u: np.ndarray, v: np.ndarray, half_u: float, half_v: float) -> np.ndarray:
    """Approximate signed distance to an axis-aligned box in (u, v) (max-norm)."""
    return np.maximum(np.abs(u) - half_u, np.abs(v) - half_v)


def ellipse_distance(u: np.ndarray, v: np.ndarray, radius_u: float, radius_v: float) -> np.ndarray:
    """Approximate signed distance to an ellipse, in units of its smaller radius."""
    norm = np.sqrt((u / radius_u) ** 2 + (v / radius_v) ** 2)
    return (norm - 1.0) * min(radius_u, radius_v)
