"""Textured ground of each scene class, painted before the landmark and the objects.

Each class has its own palette and structure (crop rows, tree canopy, dune
ripples, a grid of small roofs, parking stalls ...) so classes are told apart at
a glance; every random choice comes from the noise generator, so a twin drawn
with another noise seed gets a different ground under the same scene.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from rsitr.data.synth.canvas import Canvas, box_distance, soft_inside
from rsitr.data.synth.layout import landmark_is_vertical
from rsitr.data.synth.scene import Scene
from rsitr.data.synth.textures import fractal_noise, stripes, tinted, value_noise


def _ground(canvas: Canvas, rng: np.random.Generator, base: "tuple[float, float, float]",
            amplitude: "float | tuple[float, float, float]") -> None:
    canvas.pixels[...] = tinted(base, fractal_noise(rng, canvas.size), amplitude)


def paint_farmland(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    _ground(canvas, rng, (190, 164, 114), 14.0)
    rows = stripes(canvas.x, canvas.y, float(rng.uniform(0.025, 0.045)), float(rng.uniform(0, 180)),
                   float(rng.uniform(0, 2 * math.pi)))
    canvas.pixels += (rows * np.float32(7.0))[..., None]


def paint_forest(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    canopy = 0.6 * value_noise(rng, canvas.size, max(8, canvas.size // 5)) + 0.4 * fractal_noise(rng, canvas.size)
    canvas.pixels[...] = tinted((38, 84, 40), canopy, (14.0, 30.0, 12.0))


def paint_grassland(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """Open grass: the ground of river and playground scenes."""
    base = (104, 146, 72) if scene.scene_class == "river" else (82, 140, 60)
    _ground(canvas, rng, base, (12.0, 18.0, 10.0))


def paint_meadow(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """Pale dry grass around a lake, light enough for green trees to stand out."""
    _ground(canvas, rng, (156, 166, 104), (14.0, 16.0, 10.0))


def paint_sand(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    _ground(canvas, rng, (224, 206, 158), 9.0)


def paint_desert(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    _ground(canvas, rng, (214, 170, 110), 10.0)
    ripples = stripes(canvas.x, canvas.y, float(rng.uniform(0.05, 0.09)), float(rng.uniform(0, 180)),
                      float(rng.uniform(0, 2 * math.pi)))
    canvas.pixels += (ripples * np.float32(12.0))[..., None]


def paint_dense_roofs(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """A tight grid of small muted roofs separated by narrow streets."""
    _ground(canvas, rng, (124, 124, 128), 8.0)
    cell = float(rng.uniform(0.06, 0.08))
    offset_x, offset_y = rng.uniform(0, cell, size=2)
    grid_x = (canvas.x + np.float32(offset_x)) / np.float32(cell)
    grid_y = (canvas.y + np.float32(offset_y)) / np.float32(cell)
    columns, rows = np.floor(grid_x).astype(int), np.floor(grid_y).astype(int)
    n_cells = int(math.ceil(1.0 / cell)) + 2
    palette = np.array([(168, 150, 138), (150, 142, 134), (178, 170, 160), (138, 118, 108), (160, 160, 166)],
                       dtype=np.float32)
    roof_index = rng.integers(len(palette), size=(n_cells, n_cells))
    roof_gain = rng.uniform(0.9, 1.08, size=(n_cells, n_cells)).astype(np.float32)
    roof = palette[roof_index[rows, columns]] * roof_gain[rows, columns][..., None]
    frac_x, frac_y = grid_x - columns, grid_y - rows
    inside = ((frac_x > 0.14) & (frac_x < 0.86) & (frac_y > 0.14) & (frac_y < 0.86)).astype(np.float32)
    canvas.blend(inside, roof)
    canvas.scale(inside * (frac_x < 0.5), 0.9)  # one roof slope in shade


def paint_lawn_with_trees(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """Lawn scattered with small dark trees: the ground of sparse residential areas."""
    _ground(canvas, rng, (112, 158, 78), (12.0, 16.0, 10.0))
    softness = 1.0 / canvas.size
    for _ in range(int(rng.integers(8, 16))):
        cx, cy = rng.uniform(0, 1, size=2)
        radius = float(rng.uniform(0.018, 0.03))
        distance = np.sqrt((canvas.x - cx) ** 2 + (canvas.y - cy) ** 2) - radius
        canvas.blend(soft_inside(distance, softness), (38, 86, 40))


def paint_concrete(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """Gray industrial ground with a few low warehouses."""
    _ground(canvas, rng, (170, 170, 164), 12.0)
    softness = 1.0 / canvas.size
    for _ in range(int(rng.integers(2, 5))):
        cx, cy = rng.uniform(0.1, 0.9, size=2)
        half_x, half_y = rng.uniform(0.04, 0.1, size=2)
        shade = (144, 146, 152) if rng.random() < 0.5 else (186, 180, 170)
        canvas.blend(soft_inside(box_distance(canvas.x - cx, canvas.y - cy, half_x, half_y), softness), shade)


def paint_apron(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """Gray apron with a grass verge along one edge and a yellow taxi line."""
    _ground(canvas, rng, (158, 158, 154), 9.0)
    softness = 1.0 / canvas.size
    edge = int(rng.integers(4))
    width = float(rng.uniform(0.05, 0.09))
    distance_to_edge = (canvas.x, 1.0 - canvas.x, canvas.y, 1.0 - canvas.y)[edge]
    grass = tinted((118, 150, 82), fractal_noise(rng, canvas.size, ((6, 1.0),)), 10.0)
    canvas.blend(soft_inside(distance_to_edge - width, softness), grass)
    line_at = float(rng.uniform(0.1, 0.9))
    line_axis = canvas.x if rng.random() < 0.5 else canvas.y
    canvas.blend(soft_inside(np.abs(line_axis - line_at) - 0.004, softness), (214, 186, 60), 0.9)


def paint_asphalt(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """Dark asphalt with rows of white parking-stall lines."""
    _ground(canvas, rng, (74, 74, 80), 8.0)
    spacing = float(rng.uniform(0.045, 0.06))
    row_period = float(rng.uniform(0.2, 0.26))
    phase = float(rng.uniform(0, 1))
    vertical = landmark_is_vertical(scene.relation) if scene.relation != "around" else rng.random() < 0.5
    across, along = (canvas.x, canvas.y) if vertical else (canvas.y, canvas.x)
    stall_line = np.abs(((across / spacing + phase) % 1.0) - 0.5) > 0.44
    in_row = ((along / row_period + phase) % 1.0) < 0.55
    canvas.blend((stall_line & in_row).astype(np.float32), (206, 206, 200), 0.75)


def paint_water_between_banks(canvas: Canvas, scene: Scene, rng: np.random.Generator) -> None:
    """Water across the image with land at both ends of the bridge."""
    canvas.pixels[...] = tinted((40, 94, 132), fractal_noise(rng, canvas.size, ((4, 0.6), (11, 0.4))), 8.0)
    along = canvas.y if landmark_is_vertical(scene.relation) else canvas.x
    bank = float(rng.uniform(0.04, 0.07))
    softness = 1.0 / canvas.size
    land = tinted((120, 140, 86), fractal_noise(rng, canvas.size, ((8, 1.0),)), 12.0)
    canvas.blend(soft_inside(np.minimum(along, 1.0 - along) - bank, softness), land)


BACKGROUND_PAINTERS: dict[str, Callable[[Canvas, Scene, np.random.Generator], None]] = {
    "farmland": paint_farmland,
    "forest": paint_forest,
    "river": paint_grassland,
    "lake": paint_meadow,
    "beach": paint_sand,
    "desert": paint_desert,
    "dense_residential": paint_dense_roofs,
    "sparse_residential": paint_lawn_with_trees,
    "industrial": paint_concrete,
    "airport": paint_apron,
    "parking": paint_asphalt,
    "playground": paint_grassland,
    "bridge": paint_water_between_banks,
}
