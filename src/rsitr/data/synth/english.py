"""English phrases describing a scene, filled into the caption templates.

Captions follow the RSICD style: lower case, a space before punctuation and a
final `` .``. Agreement (``is``/``are``, singular/plural nouns) is resolved here.
"""

from __future__ import annotations

from rsitr.data.synth.scene import Scene
from rsitr.data.synth.vocabulary import ENGLISH_COUNT_WORDS, LANDMARKS, OBJECT_KINDS

#: Phrasings of each relation; a caption's ``variant`` picks one (the same index picks the Arabic one).
RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("to the left of", "on the left side of"),
    "right": ("to the right of", "on the right side of"),
    "above": ("above", "on the upper side of"),
    "below": ("below", "on the lower side of"),
    "around": ("around", "all around"),
}

#: The landmark seen from the objects: "the road is to the right of three fields".
INVERSE_RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("to the right of", "on the right side of"),
    "right": ("to the left of", "on the left side of"),
    "above": ("below", "on the lower side of"),
    "below": ("above", "on the upper side of"),
    "around": ("surrounded by",),
}

NEAR_PHRASES: tuple[str, ...] = ("next to", "near", "beside")


def pick(options: tuple[str, ...], variant: int) -> str:
    """The ``variant``-th phrasing, cycling through ``options``."""
    return options[variant % len(options)]


def _noun_phrase(scene: Scene, *words: str, definite: bool = False) -> str:
    kind = OBJECT_KINDS[scene.object_kind]
    noun = kind.english_singular if scene.count == 1 else kind.english_plural
    if definite:
        head = "the"
    else:
        head = "a" if scene.count == 1 else ENGLISH_COUNT_WORDS[scene.count]
    return " ".join(part for part in (head, *words, noun) if part)


def english_slots(scene: Scene, variant: int = 0) -> dict[str, str]:
    """Template slots for ``scene``; ``variant`` picks among phrasings; ``loc`` starts with a space."""
    spec = scene.spec
    landmark = LANDMARKS[scene.landmark].english
    relation = f"{pick(RELATION_PHRASES[scene.relation], variant)} {landmark}"
    colour, size = scene.colour, scene.size
    kind = OBJECT_KINDS[scene.object_kind]
    return {
        "be": "is" if scene.count == 1 else "are",
        "np_c": _noun_phrase(scene),
        "np_cc": _noun_phrase(scene, colour),
        "np_cs": _noun_phrase(scene, size),
        "np_full": _noun_phrase(scene, size, colour),
        "np_def_col": _noun_phrase(scene, colour, definite=True),
        "np_def_size_col": _noun_phrase(scene, size, colour, definite=True),
        "rel": relation,
        "inv_rel_np": f"{pick(INVERSE_RELATION_PHRASES[scene.relation], variant)} {_noun_phrase(scene, colour)}",
        "near": pick(NEAR_PHRASES, variant),
        "lm": landmark,
        "loc": f" {spec.location_en}" if spec.location_en else "",
        "with": spec.with_en,
        "participle": kind.english_participle,
    }
