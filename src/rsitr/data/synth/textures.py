"""Noise fields that give synthetic scenes an aerial-photo texture.

All fields are float32 arrays of shape (n, n) with values in about [-1, 1], drawn
from the caller's ``numpy.random.Generator`` so a scene's texture is reproducible
from its noise seed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth random field: a (cells+1)^2 random grid upsampled bicubically, in [-1, 1]."""
    grid = rng.uniform(-1.0, 1.0, size=(cells + 1, cells + 1)).astype(np.float32)
    field = Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(field, dtype=np.float32)


def fractal_noise(rng: np.random.Generator, size: int,
                  octaves: "tuple[tuple[int, float], ...]" = ((3, 0.5), (7, 0.3), (16, 0.2))) -> np.ndarray:
    """Sum of value-noise octaves, given as (cells, weight) pairs."""
    field = np.zeros((size, size), dtype=np.float32)
    for cells, weight in octaves:
        field += np.float32(weight) * value_noise(rng, size, cells)
    return field


def stripes(x: np.ndarray, y: np.ndarray, period: float, degrees: float, phase: float) -> np.ndarray:
    """Parallel sinusoidal stripes (crop rows, dune ripples) in [-1, 1]."""
    theta = np.deg2rad(degrees)
    along = x * np.float32(np.cos(theta)) + y * np.float32(np.sin(theta))
    return np.sin(np.float32(2.0 * np.pi / period) * along + np.float32(phase)).astype(np.float32)


def tinted(base: "tuple[float, float, float]", field: np.ndarray,
           amplitude: "float | tuple[float, float, float]") -> np.ndarray:
    """An (n, n, 3) image: ``base`` colour shifted by ``field`` times a (per-channel) ``amplitude``."""
    colour = np.asarray(base, dtype=np.float32)
    gain = np.asarray(amplitude, dtype=np.float32).reshape(-1)
    return colour[None, None, :] + field[..., None] * gain[None, None, :]
