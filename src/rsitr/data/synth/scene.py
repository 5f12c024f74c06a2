"""Scene specifications: what one synthetic image shows, and its fine-grained twin.

A scene is a class plus one group of counted objects (kind, count 1..5, colour,
size) placed in one relation (left/right/above/below/around) to the class's
landmark. Captions are generated from these attributes, so they are true by
construction. A twin changes exactly one of count, colour or relation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from rsitr.data.synth.classes import CLASSES, SceneClass
from rsitr.data.synth.layout import Layout, make_layout

MIN_COUNT_AROUND: int = 3  # "around the lake" needs objects on several sides
MAX_COUNT: int = 5
TWIN_ATTRIBUTES: tuple[str, ...] = ("count", "colour", "relation")


@dataclass(frozen=True)
class Scene:
    """One image's content."""

    scene_class: str
    count: int
    colour: str
    size: str
    relation: str
    layout: Layout

    @property
    def spec(self) -> SceneClass:
        return CLASSES[self.scene_class]

    @property
    def object_kind(self) -> str:
        return self.spec.object_kind

    @property
    def landmark(self) -> str:
        return self.spec.landmark

    def attributes(self) -> dict[str, object]:
        """JSON-able ground truth of the scene's content."""
        return {
            "class": self.scene_class,
            "object": self.object_kind,
            "count": self.count,
            "colour": self.colour,
            "size": self.size,
            "relation": self.relation,
            "landmark": self.landmark,
        }


def _allowed_counts(relation: str) -> range:
    low = MIN_COUNT_AROUND if relation == "around" else 1
    return range(low, MAX_COUNT + 1)


def _pick(rng: np.random.Generator, options: "list[str] | tuple[str, ...] | range") -> "str | int":
    values = list(options)
    return values[int(rng.integers(len(values)))]


def sample_scene(scene_class: str, rng: np.random.Generator) -> Scene:
    """Draw a random scene of ``scene_class``."""
    spec = CLASSES[scene_class]
    relation = str(_pick(rng, spec.relations))
    count = int(_pick(rng, _allowed_counts(relation)))
    colour = str(_pick(rng, spec.colours))
    size = str(_pick(rng, ("large", "small")))
    layout = make_layout(spec.landmark, spec.object_kind, relation, count, size, rng)
    return Scene(scene_class, count, colour, size, relation, layout)


@dataclass(frozen=True)
class TwinChange:
    """Which attribute a twin changes, from what to what."""

    attribute: str
    before: "str | int"
    after: "str | int"


def make_twin(scene: Scene, rng: np.random.Generator) -> tuple[Scene, TwinChange]:
    """A scene equal to ``scene`` except for exactly one of count, colour or relation.

    A colour twin keeps the object positions; a count or relation twin gets a new
    arrangement of its objects (positions are not an attribute captions describe).
    """
    spec = scene.spec
    attribute = str(_pick(rng, TWIN_ATTRIBUTES))
    if attribute == "colour":
        colour = str(_pick(rng, [c for c in spec.colours if c != scene.colour]))
        return replace(scene, colour=colour), TwinChange("colour", scene.colour, colour)
    if attribute == "count":
        count = int(_pick(rng, [n for n in _allowed_counts(scene.relation) if n != scene.count]))
        layout = make_layout(spec.landmark, spec.object_kind, scene.relation, count, scene.size, rng)
        return replace(scene, count=count, layout=layout), TwinChange("count", scene.count, count)
    relations = [r for r in spec.relations if r != scene.relation and scene.count in _allowed_counts(r)]
    relation = str(_pick(rng, relations))
    layout = make_layout(spec.landmark, spec.object_kind, relation, scene.count, scene.size, rng)
    return replace(scene, relation=relation, layout=layout), TwinChange("relation", scene.relation, relation)
