"""Where a scene's landmark and objects go, in fractions of the image side.

Coordinates are (x, y) with x to the right and y downwards, so "above" means a
smaller y. A relation puts the landmark on one side and the objects on the other:
for "left" the landmark stands at x ~ 0.65 and the objects lie in x < 0.5; for
"around" the landmark is centred and the objects sit on a ring about it. Linear
landmarks (roads, rivers) are vertical bands for left/right and horizontal bands
for above/below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rsitr.data.synth.vocabulary import SIZE_FRACTION

#: Half the thickness of each landmark across the relation axis, as a share of the image side.
LANDMARK_HALF_EXTENT: dict[str, float] = {
    "road": 0.05, "river": 0.11, "beach": 0.02, "bridge": 0.07,
    "lake": 0.17, "factory": 0.16, "terminal": 0.12, "building": 0.14, "track": 0.17,
}

#: Extent of an object across its row, relative to its size (fields and courts are wide).
CROSS_FACTOR: dict[str, float] = {"field": 1.6, "tennis_court": 1.4}

#: Kinds drawn square to the image axes; the others get any heading.
AXIS_ALIGNED_KINDS: frozenset[str] = frozenset({"field", "house", "building", "tennis_court", "storage_tank"})

ALONG_RANGE: tuple[float, float] = (0.1, 0.9)
EDGE_MARGIN: float = 0.04
RING_RADIUS: float = 0.355


@dataclass(frozen=True)
class PlacedObject:
    """One drawn object: centre, heading in degrees and a shape-variation value in [0, 1)."""

    x: float
    y: float
    angle: float
    variation: float


@dataclass(frozen=True)
class Layout:
    """Landmark placement and the placed objects of one scene."""

    landmark_centre: float  # x of a vertical landmark, y of a horizontal one, 0.5 when centred
    landmark_shape: tuple[float, float, float]  # uniform [0, 1) values the painter turns into shape details
    objects: tuple[PlacedObject, ...]


def landmark_is_vertical(relation: str) -> bool:
    """Left/right relations use a vertical landmark; above/below a horizontal one."""
    return relation in ("left", "right")


def _landmark_centre(relation: str, rng: np.random.Generator) -> float:
    if relation == "around":
        return 0.5
    far_side = float(rng.uniform(0.62, 0.7))
    return far_side if relation in ("left", "above") else 1.0 - far_side


def _object_cross_range(relation: str, landmark: str, centre: float) -> tuple[float, float]:
    """Interval, across the landmark, in which object centres' footprints must lie."""
    gap = LANDMARK_HALF_EXTENT[landmark] + 0.03
    if relation in ("left", "above"):
        return EDGE_MARGIN, centre - gap
    return centre + gap, 1.0 - EDGE_MARGIN


def _heading(kind: str, rng: np.random.Generator) -> float:
    if kind in AXIS_ALIGNED_KINDS:
        return float(rng.uniform(-6.0, 6.0))
    return float(rng.uniform(0.0, 360.0))


def object_extent(kind: str, size: str) -> tuple[float, float]:
    """(along, across) extent of one object as a share of the image side."""
    side = SIZE_FRACTION[size]
    return side, side * CROSS_FACTOR.get(kind, 1.0)


def make_layout(landmark: str, kind: str, relation: str, count: int, size: str,
                rng: np.random.Generator) -> Layout:
    """Draw the landmark position and the object positions for one scene."""
    centre = _landmark_centre(relation, rng)
    landmark_shape = (float(rng.random()), float(rng.random()), float(rng.random()))
    along_extent, cross_extent = object_extent(kind, size)
    placed: list[PlacedObject] = []
    if relation == "around":
        phase = float(rng.uniform(0.0, 2.0 * math.pi))
        for index in range(count):
            theta = phase + 2.0 * math.pi * index / count
            radius = RING_RADIUS + float(rng.uniform(-0.015, 0.015))
            placed.append(PlacedObject(0.5 + radius * math.cos(theta), 0.5 + radius * math.sin(theta),
                                       _heading(kind, rng), float(rng.random())))
    else:
        low, high = _object_cross_range(relation, landmark, centre)
        slot = (ALONG_RANGE[1] - ALONG_RANGE[0]) / count
        slack = max(0.0, slot - along_extent) * 0.3
        for index in range(count):
            along = ALONG_RANGE[0] + slot * (index + 0.5) + float(rng.uniform(-slack, slack))
            cross = float(rng.uniform(low + cross_extent / 2, max(low + cross_extent / 2, high - cross_extent / 2)))
            x, y = (cross, along) if landmark_is_vertical(relation) else (along, cross)
            placed.append(PlacedObject(x, y, _heading(kind, rng), float(rng.random())))
    return Layout(centre, landmark_shape, tuple(placed))
