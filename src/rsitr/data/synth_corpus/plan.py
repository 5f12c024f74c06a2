"""Planning the corpus: per image its key, class, side, and whether its caption is wrong or noisy.

A pure function of the seed and parameters, drawn from the corpus streams
(``streams.py``). Classes follow a mild Zipf law (web corpora are imbalanced),
with the rank order of the classes itself drawn from the seed. Exactly
``round(n * rate)`` captions are wrong, and as many are noisy, so the report's
shares equal the parameters up to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsitr.data.synth.classes import SCENE_CLASSES
from rsitr.data.synth_corpus.streams import STREAM_PLAN, corpus_rng
from rsitr.errors import ConfigError

CLASS_ZIPF_EXPONENT: float = 0.5
KEY_DIGITS: int = 7


@dataclass(frozen=True)
class CorpusItem:
    """One planned corpus image."""

    index: int
    scene_class: str
    size_px: int
    wrong: bool
    noisy: bool

    @property
    def key(self) -> str:
        return f"{self.index:0{KEY_DIGITS}d}"


def check_parameters(n_images: int, image_size: tuple[int, int], wrong_caption_rate: float,
                     noise_word_rate: float, shard_size: int) -> None:
    """Raise ``ConfigError`` naming the first invalid parameter."""
    low, high = image_size
    if not 1 <= n_images < 10 ** KEY_DIGITS:
        raise ConfigError(f"n_images={n_images} must be in 1..{10 ** KEY_DIGITS - 1}")
    if not 16 <= low <= high:
        raise ConfigError(f"image_size={image_size} must be (min, max) with 16 <= min <= max")
    for name, rate in (("wrong_caption_rate", wrong_caption_rate), ("noise_word_rate", noise_word_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"{name}={rate} must be in [0, 1]")
    if shard_size < 1:
        raise ConfigError(f"shard_size={shard_size} must be >= 1")


def _class_probabilities(rng: np.random.Generator) -> np.ndarray:
    ranks = rng.permutation(len(SCENE_CLASSES)) + 1
    weights = 1.0 / ranks.astype(np.float64) ** CLASS_ZIPF_EXPONENT
    return weights / weights.sum()


def _flags(rng: np.random.Generator, n_images: int, rate: float) -> np.ndarray:
    flags = np.zeros(n_images, dtype=bool)
    flags[rng.choice(n_images, round(n_images * rate), replace=False)] = True
    return flags


def plan_corpus(n_images: int, seed: int, image_size: tuple[int, int], wrong_caption_rate: float,
                noise_word_rate: float) -> list[CorpusItem]:
    """The corpus's images, in key order."""
    rng = corpus_rng(seed, STREAM_PLAN)
    classes = rng.choice(len(SCENE_CLASSES), size=n_images, p=_class_probabilities(rng))
    sizes = rng.integers(image_size[0], image_size[1] + 1, size=n_images)
    wrong = _flags(rng, n_images, wrong_caption_rate)
    noisy = _flags(rng, n_images, noise_word_rate)
    return [CorpusItem(i, SCENE_CLASSES[int(classes[i])], int(sizes[i]), bool(wrong[i]), bool(noisy[i]))
            for i in range(n_images)]
