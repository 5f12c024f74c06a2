"""The coarse stage's binary codes: where a c2f evaluation or a gallery gets its sign codes.

``c2f.codes`` picks one (``coder_for``):

* ``learned``: hash heads. A model whose embeddings carry ``"hash"`` (continuous codes of
  heads trained with it, ``CfitrModel``) is signed as is (``ModelHashCoder``, nothing to
  fit); otherwise the heads fitted post hoc on the frozen model (``HeadCoder`` over a
  ``HashHeads``, ``rsitr c2f train``).
* ``simhash``: the sign of ``bits`` seeded random hyperplanes over the global embeddings
  (Charikar, STOC 2002; no training): ``SimHashCoder``. Every c2f evaluation also reports
  SimHash at the codes' bits as the baseline learned codes must beat.
* ``sign``: the sign of the global embedding itself (``SignCoder``; bits = its dimension).

A coder maps ``(modality, embeddings)`` to packed codes ``uint8 [N, bits / 8]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from rsitr.config.schema import C2F_CODES
from rsitr.retrieval.binary_codes import pack_codes

__all__ = [
    "CODE_KINDS",
    "Coder",
    "HeadCoder",
    "ModelHashCoder",
    "SignCoder",
    "SimHashCoder",
    "as_coder",
    "embeddings_have_hash",
]

CODE_KINDS = C2F_CODES
Embeddings = dict[str, torch.Tensor]


class Coder(Protocol):
    """Packed sign codes of one modality's embeddings; ``kind`` names where they come from."""

    kind: str

    def bits_of(self, embeddings: Embeddings) -> int: ...

    def codes(self, modality: str, embeddings: Embeddings) -> np.ndarray: ...


def embeddings_have_hash(embeddings: Embeddings) -> bool:
    """Whether the model's embeddings carry its own continuous hash codes (``"hash"``)."""
    return "hash" in embeddings


@dataclass(frozen=True)
class HeadCoder:
    """Post-hoc hash heads (``HashHeads``) on the global embeddings."""

    heads: Any
    kind: str = "learned"

    def bits_of(self, embeddings: Embeddings) -> int:
        return int(self.heads.bits)

    def codes(self, modality: str, embeddings: Embeddings) -> np.ndarray:
        return self.heads.pack(modality, embeddings["global"])  # [N, bits / 8]


@dataclass(frozen=True)
class ModelHashCoder:
    """The model's own hash codes (``embeddings["hash"]`` in (-1, 1), ``[N, bits]``), signed."""

    kind: str = "learned"

    def bits_of(self, embeddings: Embeddings) -> int:
        return int(embeddings["hash"].shape[1])

    def codes(self, modality: str, embeddings: Embeddings) -> np.ndarray:
        return pack_codes(embeddings["hash"].float().cpu())  # [N, bits / 8]


@dataclass(frozen=True)
class SignCoder:
    """The sign of the global embedding itself: ``bits`` = its dimension."""

    kind: str = "sign"

    def bits_of(self, embeddings: Embeddings) -> int:
        return int(embeddings["global"].shape[1])

    def codes(self, modality: str, embeddings: Embeddings) -> np.ndarray:
        return pack_codes(embeddings["global"].float().cpu())  # [N, D / 8]


@dataclass(frozen=True)
class SimHashCoder:
    """``sign(x @ W)`` with ``W [D, bits]`` standard normal from ``seed`` (the same for both modalities)."""

    bits: int
    seed: int = 0
    kind: str = "simhash"
    _planes: dict[int, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    def planes(self, dim: int) -> torch.Tensor:
        """``float32 [dim, bits]``: the seeded hyperplanes (a function of ``dim``, ``bits``, ``seed`` only)."""
        if dim not in self._planes:
            generator = torch.Generator().manual_seed(int(self.seed))
            self._planes[dim] = torch.randn(dim, self.bits, generator=generator)  # [D, bits]
        return self._planes[dim]

    def bits_of(self, embeddings: Embeddings) -> int:
        return int(self.bits)

    def codes(self, modality: str, embeddings: Embeddings) -> np.ndarray:
        features = embeddings["global"].float().cpu()  # [N, D]
        return pack_codes(features @ self.planes(features.shape[1]))  # [N, bits / 8]


def as_coder(source: Any) -> Coder:
    """A ``Coder`` as is; a ``HashHeads`` wrapped in ``HeadCoder``; ``None``: the model's own hash codes."""
    if source is None:
        return ModelHashCoder()
    if hasattr(source, "codes") and hasattr(source, "kind"):
        return source
    return HeadCoder(source)
