"""Painting the counted objects: fields, ponds, houses, trees, boats, planes, cars ...

Every object casts a shadow towards the lower right (sun in the upper left, as
in most aerial images) and is painted in its scene colour, so count, colour and
size stay readable at 64 px. Shapes are signed-distance masks evaluated in a
small window around the object.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from rsitr.data.synth.canvas import Canvas, box_distance, ellipse_distance, rotate, soft_inside
from rsitr.data.synth.layout import CROSS_FACTOR, PlacedObject

SHADOW_OFFSET: float = 0.14  # shadow displacement, as a share of the object size
SHADOW_DARKNESS: float = 0.55

#: Returns the signed distance (negative inside) in object-local coordinates (u, v), size s.
ShapeFunction = Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]


def _plane(u: np.ndarray, v: np.ndarray, s: float, variation: float) -> np.ndarray:
    fuselage = box_distance(u, v, 0.5 * s, 0.075 * s)
    wings = box_distance(u - 0.04 * s, v, 0.1 * s, 0.47 * s)
    tail = box_distance(u + 0.4 * s, v, 0.06 * s, 0.19 * s)
    return np.minimum(np.minimum(fuselage, wings), tail)


def _car(u: np.ndarray, v: np.ndarray, s: float, variation: float) -> np.ndarray:
    return box_distance(u, v, 0.45 * s, 0.23 * s)


def _boat(u: np.ndarray, v: np.ndarray, s: float, variation: float) -> np.ndarray:
    """Hull with a pointed bow at +u."""
    half_length, half_beam = 0.5 * s, 0.17 * s
    taper = np.clip((half_length - u) / (0.35 * s), 0.0, 1.0)
    return np.maximum(np.abs(u) - half_length, np.abs(v) - half_beam * taper)


def _disc(u: np.ndarray, v: np.ndarray, s: float, variation: float) -> np.ndarray:
    return np.sqrt(u ** 2 + v ** 2) - 0.5 * s


def _rock(u: np.ndarray, v: np.ndarray, s: float, variation: float) -> np.ndarray:
    angle = np.arctan2(v, u)
    phase = np.float32(2 * math.pi * variation)
    radius = 0.45 * s * (1.0 + 0.16 * np.sin(3 * angle + phase) + 0.08 * np.sin(5 * angle - 2 * phase))
    return np.sqrt(u ** 2 + v ** 2) - radius


def _pond(u: np.ndarray, v: np.ndarray, s: float, variation: float) -> np.ndarray:
    return ellipse_distance(u, v, 0.55 * s, (0.38 + 0.08 * variation) * s)


def _square(u: np.ndarray, v: np.ndarray, s: float, variation: float) -> np.ndarray:
    return box_distance(u, v, 0.43 * s, 0.43 * s)


def _wide_box(u: np.ndarray, v: np.ndarray, s: float, variation: float, cross: float) -> np.ndarray:
    """Box of ``s`` along u by ``cross * s`` along v."""
    return box_distance(u, v, 0.46 * s, 0.46 * s * cross)


def _field(u: np.ndarray, v: np.ndarray, s: float, variation: float) -> np.ndarray:
    return _wide_box(u, v, s, variation, CROSS_FACTOR["field"])


def _tennis_court(u: np.ndarray, v: np.ndarray, s: float, variation: float) -> np.ndarray:
    return _wide_box(u, v, s, variation, CROSS_FACTOR["tennis_court"])


SHAPES: dict[str, ShapeFunction] = {
    "field": _field, "pond": _pond, "house": _square, "building": _square, "tree": _disc,
    "boat": _boat, "rock": _rock, "storage_tank": _disc, "plane": _plane, "car": _car,
    "tennis_court": _tennis_court,
}

#: Kinds lying flat on the ground: no cast shadow.
FLAT_KINDS: frozenset[str] = frozenset({"field", "pond", "tennis_court"})


def _details(kind: str, canvas: Canvas, rows: slice, cols: slice, u: np.ndarray, v: np.ndarray,
             s: float, body: np.ndarray) -> None:
    """Kind-specific markings inside the body mask (roof ridges, court lines, crop rows ...)."""
    softness = 1.0 / canvas.size
    if kind == "house":
        canvas.scale_window(rows, cols, body * (v < 0), 0.8)  # shaded roof slope
    elif kind == "building":
        canvas.scale_window(rows, cols, body - soft_inside(_square(u, v, s, 0.0) + 0.1 * s, softness), 0.72)
    elif kind == "tree":
        canvas.scale_window(rows, cols, body * np.clip((np.sqrt(u ** 2 + v ** 2) / (0.5 * s)) ** 2, 0, 1), 0.75)
    elif kind == "storage_tank":
        ring = np.abs(np.sqrt(u ** 2 + v ** 2) - 0.3 * s) - 0.035 * s
        canvas.scale_window(rows, cols, soft_inside(ring, softness), 0.78)
    elif kind == "field":
        crop_rows = (np.sin(u * np.float32(2 * math.pi / (0.22 * s))) > 0.3).astype(np.float32)
        canvas.scale_window(rows, cols, body * crop_rows, 0.86)
    elif kind == "tennis_court":
        half_u, half_v = 0.46 * s, 0.46 * s * CROSS_FACTOR["tennis_court"]
        outline = np.abs(box_distance(u, v, half_u - 0.1 * s, half_v - 0.1 * s)) - 0.025 * s
        net = box_distance(u, v, 0.02 * s, half_v - 0.1 * s)
        canvas.blend_window(rows, cols, soft_inside(np.minimum(outline, net), softness), (240, 240, 240), 0.9)
    elif kind == "car":
        canvas.scale_window(rows, cols, soft_inside(box_distance(u - 0.18 * s, v, 0.07 * s, 0.18 * s), softness),
                            0.55)
    elif kind == "pond":
        canvas.scale_window(rows, cols, body * np.clip(-_pond(u, v, s, 0.0) / (0.3 * s), 0, 1), 0.82)
    elif kind == "rock":
        canvas.scale_window(rows, cols, body * (u + v > 0), 0.78)  # side away from the sun


def paint_object(canvas: Canvas, kind: str, placed: PlacedObject, size: float,
                 colour: "tuple[int, int, int]", rows_vertical: bool) -> None:
    """Paint one object of side ``size`` centred at ``placed`` in ``colour``.

    ``rows_vertical`` turns wide kinds (fields, courts) so their long side runs
    across a vertical row of objects.
    """
    shape = SHAPES[kind]
    heading = placed.angle
    if kind in CROSS_FACTOR and rows_vertical:
        heading += 90.0  # turn the wide side (v) across the row, i.e. along x
    reach = size * max(1.0, CROSS_FACTOR.get(kind, 1.0)) * 0.8 + size * SHADOW_OFFSET
    rows, cols, dx, dy = canvas.window(placed.x, placed.y, reach)
    softness = 1.0 / canvas.size
    if kind not in FLAT_KINDS:
        offset = SHADOW_OFFSET * size
        shadow_u, shadow_v = rotate(dx - offset, dy - offset, heading)
        canvas.scale_window(rows, cols, soft_inside(shape(shadow_u, shadow_v, size, placed.variation), softness),
                            SHADOW_DARKNESS)
    u, v = rotate(dx, dy, heading)
    body = soft_inside(shape(u, v, size, placed.variation), softness)
    shade = 0.94 + 0.12 * placed.variation
    canvas.blend_window(rows, cols, body, np.asarray(colour, dtype=np.float32) * np.float32(shade))
    _details(kind, canvas, rows, cols, u, v, size, body)
