"""The corpus's own random streams, disjoint from the synthetic benchmark's.

The benchmark seeds ``numpy.random.default_rng([seed, stream, key, ...])``
(``rsitr.data.synth.plan.child_rng``). The corpus prefixes every seed sequence
with ``CORPUS_TAG``, so even with the same integer seed no corpus stream equals a
benchmark stream: scenes, textures and captions all differ.
"""

from __future__ import annotations

import numpy as np

CORPUS_TAG: int = 0x52_53_35_4D  # "RS5M" in ASCII

# Stream identifiers: corpus_rng(seed, STREAM, index).
STREAM_PLAN, STREAM_SCENE, STREAM_NOISE, STREAM_CAPTION = range(4)


def corpus_rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """Independent generator for one purpose and one item of the corpus."""
    return np.random.default_rng([CORPUS_TAG, seed, stream, *keys])
