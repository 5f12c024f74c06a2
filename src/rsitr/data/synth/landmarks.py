"""Painting each landmark (road, river, beach, bridge, lake, factory, ...) on a canvas.

Geometry comes from the scene's :class:`~rsitr.data.synth.layout.Layout` (so a
colour twin has the very same landmark), and stays inside the half-extent that
``layout.LANDMARK_HALF_EXTENT`` reserves, so objects never overlap it. Texture
comes from the noise generator.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from rsitr.data.synth.canvas import Canvas, box_distance, ellipse_distance, soft_inside
from rsitr.data.synth.layout import landmark_is_vertical
from rsitr.data.synth.scene import Scene
from rsitr.data.synth.textures import fractal_noise, tinted

ROAD_COLOURS: dict[str, tuple[float, float, float]] = {
    "farmland": (150, 138, 118),
    "forest": (166, 136, 96),
    "desert": (96, 94, 98),
    "dense_residential": (78, 78, 84),
    "sparse_residential": (118, 118, 122),
}


def _axes(canvas: Canvas, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """(across, along) coordinates of a linear landmark: (x, y) when it is vertical."""
    if landmark_is_vertical(scene.relation):
        return canvas.x, canvas.y
    return canvas.y, canvas.x


def _objects_side(scene: Scene) -> float:
    """-1 when objects lie at smaller coordinates than the landmark (left/above), else +1."""
    return -1.0 if scene.relation in ("left", "above") else 1.0


def _compact_frame(scene: Scene, half_across: float, half_along: float,
                   half_around: tuple[float, float]) -> tuple[float, float, float, float]:
    """(cx, cy, half_x, half_y) of a compact landmark."""
    centre = scene.layout.landmark_centre
    drift = (scene.layout.landmark_shape[2] - 0.5) * 0.08
    if scene.relation == "around":
        return 0.5, 0.5, half_around[0], half_around[1]
    if landmark_is_vertical(scene.relation):
        return centre, 0.5 + drift, half_across, half_along
    return 0.5 + drift, centre, half_along, half_across


def _shadow_and_body(canvas: Canvas, distance_at: Callable[[float, float], np.ndarray],
                     body: "tuple[float, float, float] | np.ndarray", shadow: float = 0.02) -> np.ndarray:
    """Paint a cast shadow then the body of a shape given by a signed-distance function."""
    softness = 1.0 / canvas.size
    canvas.scale(soft_inside(distance_at(shadow, shadow), softness), 0.55)
    mask = soft_inside(distance_at(0.0, 0.0), softness)
    canvas.blend(mask, body)
    return mask


def paint_road(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    across, along = _axes(canvas, scene)
    shape = scene.layout.landmark_shape
    half = 0.03 + 0.014 * shape[0]
    offset = np.abs(across - scene.layout.landmark_centre)
    colour = tinted(ROAD_COLOURS[scene.scene_class], fractal_noise(rng, canvas.size, ((8, 1.0),)), 6.0)
    softness = 1.0 / canvas.size
    canvas.scale(soft_inside(offset - half - 0.008, softness), 0.8)  # kerb / verge
    canvas.blend(soft_inside(offset - half, softness), colour)
    if scene.scene_class in ("dense_residential", "desert"):
        dashes = (np.sin(along * np.float32(2 * math.pi * 9)) > 0).astype(np.float32)
        canvas.blend(soft_inside(offset - 0.004, softness) * dashes, (226, 222, 206), 0.9)


def paint_river(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    across, along = _axes(canvas, scene)
    shape = scene.layout.landmark_shape
    amplitude = 0.012 + 0.02 * shape[0]
    frequency = 0.5 + 0.7 * shape[1]
    half = 0.052 + 0.012 * shape[2]
    centre_line = scene.layout.landmark_centre + amplitude * np.sin(
        along * np.float32(2 * math.pi * frequency) + np.float32(2 * math.pi * shape[0]))
    offset = np.abs(across - centre_line)
    softness = 1.0 / canvas.size
    canvas.blend(soft_inside(offset - half - 0.012, softness), (128, 122, 84))  # muddy banks
    water = tinted((48, 98, 122), fractal_noise(rng, canvas.size, ((6, 1.0),)), 7.0)
    canvas.blend(soft_inside(offset - half, softness), water)
    canvas.scale(soft_inside(offset - half * 0.45, half), 0.88)  # deeper mid-channel


def paint_beach(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """Sea on the objects' side of a wavy shoreline, foam along it; the sand is the background."""
    across, along = _axes(canvas, scene)
    shape = scene.layout.landmark_shape
    shore = scene.layout.landmark_centre + 0.012 * np.sin(
        along * np.float32(2 * math.pi * (1.5 + shape[1])) + np.float32(2 * math.pi * shape[0]))
    seaward = (shore - across) * np.float32(-_objects_side(scene))  # > 0 in the sea
    softness = 1.0 / canvas.size
    canvas.scale(soft_inside(np.abs(seaward + 0.02) - 0.02, softness), 0.86)  # wet sand
    depth = np.clip(seaward / 0.6, 0.0, 1.0)[..., None]
    sea = tinted((40, 112, 164), fractal_noise(rng, canvas.size, ((5, 0.6), (12, 0.4))), 8.0)
    sea = sea * (1.0 - 0.45 * depth)
    canvas.blend(soft_inside(-seaward, softness), sea)
    canvas.blend(soft_inside(np.abs(seaward - 0.012) - 0.007, softness), (236, 240, 240), 0.85)


def paint_bridge(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    across, along = _axes(canvas, scene)
    offset = across - scene.layout.landmark_centre
    half = 0.034 + 0.008 * scene.layout.landmark_shape[0]
    softness = 1.0 / canvas.size
    canvas.scale(soft_inside(np.abs(offset - half - 0.012) - 0.012, softness), 0.6)  # shadow on the water
    deck = tinted((162, 162, 160), fractal_noise(rng, canvas.size, ((10, 1.0),)), 5.0)
    canvas.blend(soft_inside(np.abs(offset) - half, softness), deck)
    canvas.blend(soft_inside(np.abs(np.abs(offset) - half + 0.003) - 0.003, softness), (214, 214, 210))
    dashes = (np.sin(along * np.float32(2 * math.pi * 10)) > 0).astype(np.float32)
    canvas.blend(soft_inside(np.abs(offset) - 0.003, softness) * dashes, (232, 228, 200), 0.8)


def paint_lake(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    shape = scene.layout.landmark_shape
    cx, cy, radius_x, radius_y = _compact_frame(scene, 0.14 + 0.02 * shape[0], 0.23 + 0.05 * shape[1],
                                                (0.15, 0.13 + 0.03 * shape[1]))
    distance = ellipse_distance(canvas.x - cx, canvas.y - cy, radius_x, radius_y)
    softness = 1.0 / canvas.size
    canvas.blend(soft_inside(distance - 0.01, softness), (184, 176, 132))  # shore
    water = tinted((38, 82, 136), fractal_noise(rng, canvas.size, ((5, 1.0),)), 6.0)
    canvas.blend(soft_inside(distance, softness), water)
    canvas.scale(soft_inside(distance + 0.04, 0.08), 0.8)


def _paint_block(canvas: Canvas, scene: Scene, rng: np.random.Generator, frame: tuple[float, float, float, float],
                 roof: "tuple[float, float, float]", border: float, ridge_period: float) -> None:
    cx, cy, half_x, half_y = frame

    def distance_at(shift_x: float, shift_y: float) -> np.ndarray:
        return box_distance(canvas.x - cx - shift_x, canvas.y - cy - shift_y, half_x, half_y)

    roof_pixels = tinted(roof, fractal_noise(rng, canvas.size, ((9, 1.0),)), 5.0)
    mask = _shadow_and_body(canvas, distance_at, roof_pixels)
    inner = soft_inside(distance_at(0.0, 0.0) + 0.012, 1.0 / canvas.size)
    canvas.scale(mask - inner, border)
    if ridge_period > 0:
        long_axis = canvas.y if half_y >= half_x else canvas.x
        ridges = (np.sin(long_axis * np.float32(2 * math.pi / ridge_period)) > 0.6).astype(np.float32)
        canvas.scale(inner * ridges, 0.86)


def paint_factory(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    shape = scene.layout.landmark_shape
    frame = _compact_frame(scene, 0.13 + 0.02 * shape[0], 0.22 + 0.06 * shape[1], (0.14, 0.14 + 0.03 * shape[1]))
    _paint_block(canvas, scene, rng, frame, (92, 112, 134), 0.7, 0.035)


def paint_terminal(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    shape = scene.layout.landmark_shape
    frame = _compact_frame(scene, 0.09 + 0.02 * shape[0], 0.28 + 0.05 * shape[1], (0.12, 0.12))
    _paint_block(canvas, scene, rng, frame, (214, 214, 220), 0.66, 0.0)


def paint_building(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    shape = scene.layout.landmark_shape
    frame = _compact_frame(scene, 0.1 + 0.03 * shape[0], 0.2 + 0.06 * shape[1], (0.13, 0.13))
    _paint_block(canvas, scene, rng, frame, (204, 194, 176), 0.72, 0.06)


def paint_track(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """A red oval running track (stadium shape) around a green infield."""
    shape = scene.layout.landmark_shape
    cx, cy, half_x, half_y = _compact_frame(scene, 0.15 + 0.015 * shape[0], 0.24 + 0.04 * shape[1],
                                            (0.16, 0.16 + 0.04 * shape[1]))
    radius = min(half_x, half_y)
    dx, dy = canvas.x - cx, canvas.y - cy
    if half_y >= half_x:
        dy = np.sign(dy) * np.maximum(np.abs(dy) - (half_y - radius), 0.0)
    else:
        dx = np.sign(dx) * np.maximum(np.abs(dx) - (half_x - radius), 0.0)
    distance = np.sqrt(dx ** 2 + dy ** 2) - radius
    softness = 1.0 / canvas.size
    surface = tinted((178, 80, 60), fractal_noise(rng, canvas.size, ((9, 1.0),)), 6.0)
    canvas.blend(soft_inside(distance, softness), surface)
    for lane in (0.015, 0.03):
        canvas.blend(soft_inside(np.abs(distance + lane) - 0.0025, softness), (236, 230, 226), 0.7)
    canvas.blend(soft_inside(distance + 0.045, softness), (74, 156, 66))
    canvas.blend(soft_inside(np.abs(distance + 0.06) - 0.0025, softness), (236, 236, 236), 0.8)


LANDMARK_PAINTERS: dict[str, Callable[[Canvas, Scene, np.random.Generator], None]] = {
    "road": paint_road,
    "river": paint_river,
    "beach": paint_beach,
    "bridge": paint_bridge,
    "lake": paint_lake,
    "factory": paint_factory,
    "terminal": paint_terminal,
    "building": paint_building,
    "track": paint_track,
}
