"""Five parallel English / Arabic captions per scene, and weak (wrong-class) captions.

Captions are drawn from ``templates.TEMPLATES`` plus, sometimes, one of the class's
fixed scene-level sentences. The five templates of an image are distinct, so its
five captions are distinct; captions of different images may coincide, as in
RSICD. For a fine-grained twin pair, at least three of the five captions state the
attribute that differs between the twins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsitr.data.synth.arabic import arabic_slots
from rsitr.data.synth.classes import SCENE_CLASSES
from rsitr.data.synth.english import english_slots
from rsitr.data.synth.scene import Scene, sample_scene
from rsitr.data.synth.templates import SCENE_SENTENCE, TEMPLATES, TEMPLATES_BY_NAME

CAPTIONS_PER_IMAGE: int = 5
MIN_CAPTIONS_STATING_TWIN_ATTRIBUTE: int = 3
SCENE_SENTENCE_PROBABILITY: float = 0.2
PHRASING_VARIANTS: int = 6  # a multiple of every phrasing list length (2 and 3)
PUNCTUATION_TOKENS: frozenset[str] = frozenset({".", ",", "،"})


@dataclass(frozen=True)
class Caption:
    """One caption in both languages, with the template and class it was made from."""

    english: str
    arabic: str
    template: str
    caption_class: str


def tokenize(raw: str) -> list[str]:
    """Karpathy-style tokens: the words of ``raw`` without punctuation tokens."""
    return [token for token in raw.split() if token not in PUNCTUATION_TOKENS]


def _tidy(text: str) -> str:
    return " ".join(text.split())


def _pick_distinct(rng: np.random.Generator, names: list[str], how_many: int) -> list[str]:
    indices = rng.choice(len(names), size=how_many, replace=False)
    return [names[int(index)] for index in indices]


def _choose_templates(rng: np.random.Generator, must_mention: "str | None") -> list[str]:
    names = [template.name for template in TEMPLATES]
    chosen: list[str] = []
    if must_mention is not None:
        stating = [template.name for template in TEMPLATES if must_mention in template.mentions]
        chosen = _pick_distinct(rng, stating, MIN_CAPTIONS_STATING_TWIN_ATTRIBUTE)
    if rng.random() < SCENE_SENTENCE_PROBABILITY:
        chosen.append(SCENE_SENTENCE)
    remaining = [name for name in names if name not in chosen]
    chosen += _pick_distinct(rng, remaining, CAPTIONS_PER_IMAGE - len(chosen))
    order = rng.permutation(len(chosen))
    return [chosen[int(index)] for index in order]


def render_caption(scene: Scene, template_name: str, rng: np.random.Generator) -> Caption:
    """Fill one template (or pick one scene sentence) for ``scene``."""
    if template_name == SCENE_SENTENCE:
        sentences = scene.spec.sentences
        english, arabic = sentences[int(rng.integers(len(sentences)))]
    else:
        template = TEMPLATES_BY_NAME[template_name]
        variant = int(rng.integers(PHRASING_VARIANTS))
        english = template.english.format(**english_slots(scene, variant))
        arabic = template.arabic.format(**arabic_slots(scene, variant))
    return Caption(_tidy(english), _tidy(arabic), template_name, scene.scene_class)


def describe(scene: Scene, rng: np.random.Generator, must_mention: "str | None" = None) -> list[Caption]:
    """Exactly five true captions of ``scene``.

    ``must_mention`` (``"count"``, ``"colour"`` or ``"relation"``) makes at least three
    of them state that attribute.
    """
    return [render_caption(scene, name, rng) for name in _choose_templates(rng, must_mention)]


def weak_caption(true_class: str, rng: np.random.Generator) -> Caption:
    """A caption of a random scene of another class (a weakly-correlated caption)."""
    others = [name for name in SCENE_CLASSES if name != true_class]
    other_scene = sample_scene(others[int(rng.integers(len(others)))], rng)
    names = [template.name for template in TEMPLATES] + [SCENE_SENTENCE]
    return render_caption(other_scene, names[int(rng.integers(len(names)))], rng)
