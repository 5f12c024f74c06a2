"""Rendering a :class:`~rsitr.data.synth.scene.Scene` to an RGB image.

Order: class ground, landmark, objects (at twice the output size, then reduced),
then a low-frequency illumination field and fine grain at the output size. The
scene fixes what is shown and where; ``noise_seed`` fixes every texture, so the
same scene under another noise seed is a different photograph of the same place.
``noise_strength`` scales the illumination field (the generator raises it when a
render comes out too close, in pHash terms, to an image already generated).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from rsitr.data.synth.backgrounds import BACKGROUND_PAINTERS
from rsitr.data.synth.canvas import Canvas
from rsitr.data.synth.landmarks import LANDMARK_PAINTERS
from rsitr.data.synth.objects import paint_object
from rsitr.data.synth.scene import Scene
from rsitr.data.synth.textures import fractal_noise
from rsitr.data.synth.vocabulary import COLOURS, SIZE_FRACTION

SUPERSAMPLING: int = 2
ILLUMINATION_AMPLITUDE: float = 18.0
GRAIN_SIGMA: float = 2.5


def _rows_vertical(scene: Scene, x: float, y: float) -> bool:
    """Whether the object's row runs vertically (objects beside a vertical landmark)."""
    if scene.relation == "around":
        return abs(x - 0.5) > abs(y - 0.5)
    return scene.relation in ("left", "right")


def render_scene(scene: Scene, size_px: int, noise_seed: Sequence[int], noise_strength: float = 1.0) -> Image.Image:
    """Draw ``scene`` as a ``size_px`` x ``size_px`` RGB image."""
    rng = np.random.default_rng(list(noise_seed))
    canvas = Canvas(size_px * SUPERSAMPLING, (0.0, 0.0, 0.0))
    BACKGROUND_PAINTERS[scene.scene_class](canvas, scene, rng)
    LANDMARK_PAINTERS[scene.landmark](canvas, scene, rng)
    colour = COLOURS[scene.colour].rgb
    size = SIZE_FRACTION[scene.size]
    for placed in scene.layout.objects:
        paint_object(canvas, scene.object_kind, placed, size, colour, _rows_vertical(scene, placed.x, placed.y))
    pixels = np.asarray(canvas.to_image(size_px), dtype=np.float32)
    illumination = fractal_noise(rng, size_px, ((2, 0.6), (4, 0.4)))
    illumination *= np.float32(ILLUMINATION_AMPLITUDE * noise_strength)
    grain = rng.normal(0.0, GRAIN_SIGMA, size=(size_px, size_px, 1)).astype(np.float32)
    pixels = pixels + illumination[..., None] + grain
    return Image.fromarray(np.clip(pixels, 0.0, 255.0).round().astype(np.uint8), "RGB")
