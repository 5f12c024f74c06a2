"""One web-style alt-text caption per corpus image.

A caption is scene-level ("satellite image of farmland") or names the counted
objects ("three white storage tanks near a road"); true by construction, since it
is built from the scene's attributes. A wrong caption is built the same way from a
scene of another class whose objects and landmark differ from the true class's
objects, so it names neither the true class nor its objects. Noise appends or prepends an irrelevant phrase
(credits, dates, file names). The phrases live in ``phrases.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsitr.data.synth.classes import CLASSES, SCENE_CLASSES
from rsitr.data.synth.scene import Scene
from rsitr.data.synth.vocabulary import LANDMARKS, OBJECT_KINDS
from rsitr.data.synth_corpus.phrases import (
    CLASS_NAMES,
    CLASS_PATTERNS,
    COUNT_WORDS,
    CREDIT_NAMES,
    NOISE_PATTERNS,
    NOISE_SEPARATORS,
    OBJECT_PATTERNS,
    RELATION_WORDS,
)

OBJECT_STYLE_SHARE: float = 0.35  # "mostly class-level": the rest are scene-level captions
COLOUR_SHARE: float = 0.7  # share of object captions that state the colour
CAPITALIZE_SHARE: float = 0.3
STYLES: tuple[str, ...] = ("class", "objects")


@dataclass(frozen=True)
class Facts:
    """What a caption may say: the scene's class and its counted objects."""

    scene_class: str
    object_kind: str
    count: int
    colour: str
    relation: str
    landmark: str

    @classmethod
    def of(cls, scene: Scene) -> "Facts":
        return cls(scene.scene_class, scene.object_kind, scene.count, scene.colour, scene.relation, scene.landmark)


def _pick(rng: np.random.Generator, options: "tuple[str, ...] | list[str]") -> str:
    return options[int(rng.integers(len(options)))]


def _with_article(phrase: str, mass: bool) -> str:
    if mass:
        return phrase
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _objects_phrase(facts: Facts, rng: np.random.Generator) -> str:
    kind = OBJECT_KINDS[facts.object_kind]
    noun = kind.english_singular if facts.count == 1 else kind.english_plural
    words = [COUNT_WORDS[facts.count]]
    if rng.random() < COLOUR_SHARE:
        words.append(facts.colour)
    return " ".join(words + [noun])


def _landmark_phrase(landmark: str) -> str:
    """"the running track" -> "a running track"."""
    return "a " + LANDMARKS[landmark].english.removeprefix("the ")


def describe(facts: Facts, rng: np.random.Generator) -> tuple[str, str]:
    """(caption, style) for ``facts``; style is one of ``STYLES``."""
    name, mass = CLASS_NAMES[facts.scene_class][int(rng.integers(len(CLASS_NAMES[facts.scene_class])))]
    slots = {"np": _with_article(name, mass), "bare": name}
    if rng.random() >= OBJECT_STYLE_SHARE:
        return _pick(rng, CLASS_PATTERNS).format(**slots), "class"
    slots.update(objects=_objects_phrase(facts, rng), relation=_pick(rng, RELATION_WORDS[facts.relation]),
                 landmark=_landmark_phrase(facts.landmark))
    return _pick(rng, OBJECT_PATTERNS).format(**slots), "objects"


def wrong_facts(true_class: str, rng: np.random.Generator) -> Facts:
    """Facts of a random scene of another class whose objects and landmark are not ``true_class``'s objects."""
    true_kind = CLASSES[true_class].object_kind
    others = [name for name in SCENE_CLASSES
              if name != true_class and true_kind not in (CLASSES[name].object_kind, CLASSES[name].landmark)]
    spec = CLASSES[_pick(rng, others)]
    relation = _pick(rng, spec.relations)
    count = int(rng.integers(3 if relation == "around" else 1, 6))
    return Facts(spec.name, spec.object_kind, count, _pick(rng, spec.colours), relation, spec.landmark)


def noise_phrase(rng: np.random.Generator) -> str:
    """One irrelevant alt-text phrase: a credit, a date, a camera file name ..."""
    year = int(rng.integers(2005, 2025))
    return _pick(rng, NOISE_PATTERNS).format(
        name=_pick(rng, CREDIT_NAMES), year=year,
        date=f"{year}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
        n4=f"{int(rng.integers(10_000)):04d}", n5=f"{int(rng.integers(100_000)):05d}")


def add_noise(caption: str, rng: np.random.Generator) -> str:
    """Append or prepend an irrelevant phrase."""
    noise, separator = noise_phrase(rng), _pick(rng, NOISE_SEPARATORS)
    return f"{caption}{separator}{noise}" if rng.random() < 0.7 else f"{noise}{separator}{caption}"


def web_caption(scene: Scene, wrong: bool, noisy: bool, rng: np.random.Generator) -> tuple[str, str]:
    """The caption of one corpus image and its style."""
    facts = wrong_facts(scene.scene_class, rng) if wrong else Facts.of(scene)
    caption, style = describe(facts, rng)
    if noisy:
        caption = add_noise(caption, rng)
    if rng.random() < CAPITALIZE_SHARE:
        caption = caption[0].upper() + caption[1:]
    return caption, style
