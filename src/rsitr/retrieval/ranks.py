"""Per-query ranks of one evaluation, and their file: what the bootstrap resamples.

An evaluation of a test set keeps, besides its seven protocol numbers, the rank of the
first true match of every query (``rsitr.retrieval.metrics``; 0-based, the module's tie rule):

* ``i2t`` ``[N]``: per image, the best rank among its own captions;
* ``t2i`` ``[C]``: per caption, the rank of its own image;
* ``caption_image`` ``[C]``: the caption -> image index (images ``0..N-1``);
* ``images`` ``[N]``: a key per image (its manifest image id), so two evaluations are paired only when
  they ranked the same images in the same order.

With twin pairs (``rsitr.retrieval.twins``) it also keeps each pair's outcomes
(``twin_pairs`` ``[P, 2]``, ``twin_t2i_wins`` / ``twin_t2i_total`` ``[P]`` over both images'
captions, ``twin_i2t_wins`` ``[P]`` in 0..2), from which the twin accuracies follow exactly.

The file is a numpy ``.npz`` (no pickled objects). ``QueryRanks.metrics()`` recomputes the
stored recalls exactly (the same integer counts and divisions as ``retrieval_metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rsitr.retrieval.metrics import recall_at_k

__all__ = ["QueryRanks", "TwinOutcomes", "load_ranks", "save_ranks"]


@dataclass(frozen=True)
class TwinOutcomes:
    """Per-pair twin decisions: the counts ``twin_accuracy`` averages."""

    pairs: np.ndarray  # [P, 2] image indices
    t2i_wins: np.ndarray  # [P] captions of either image preferring their own image
    t2i_total: np.ndarray  # [P] captions of both images
    i2t_wins: np.ndarray  # [P] 0..2 images preferring their own captions

    def accuracy(self) -> dict[str, float]:
        """``twin_acc``, ``twin_acc_t2i``, ``twin_acc_i2t`` (percent) and ``twin_pairs``."""
        t2i = 100.0 * (float(self.t2i_wins.sum()) / float(self.t2i_total.sum()))  # as twin_accuracy rounds
        i2t = 100.0 * (float(self.i2t_wins.sum()) / float(2 * self.pairs.shape[0]))
        return {"twin_acc": (t2i + i2t) / 2, "twin_acc_t2i": t2i, "twin_acc_i2t": i2t,
                "twin_pairs": int(self.pairs.shape[0])}


@dataclass(frozen=True)
class QueryRanks:
    """The first-match ranks of every query of one evaluation (see the module doc)."""

    i2t: np.ndarray  # [N] int
    t2i: np.ndarray  # [C] int
    caption_image: np.ndarray  # [C] int, values in 0..N-1
    images: tuple[str, ...] = ()  # [N] keys; empty: unknown (pairing then only checks N)
    twins: TwinOutcomes | None = field(default=None)

    def __post_init__(self) -> None:
        if self.t2i.shape != self.caption_image.shape:
            raise ValueError(f"t2i ranks {self.t2i.shape} and caption_image {self.caption_image.shape} differ")
        if self.images and len(self.images) != self.i2t.shape[0]:
            raise ValueError(f"{len(self.images)} image keys for {self.i2t.shape[0]} i2t ranks")

    @property
    def n_images(self) -> int:
        return int(self.i2t.shape[0])

    def metrics(self, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
        """The seven protocol numbers, computed as ``retrieval_metrics`` does."""
        result = {f"i2t_R{k}": recall_at_k(self.i2t, k) for k in ks}
        result.update({f"t2i_R{k}": recall_at_k(self.t2i, k) for k in ks})
        result["mR"] = float(np.mean(list(result.values())))
        return result

    def same_images(self, other: "QueryRanks") -> bool:
        """Whether ``other`` ranked the same images (so the two can be resampled together)."""
        if self.n_images != other.n_images:
            return False
        return not (self.images and other.images) or self.images == other.images


def save_ranks(path: str | Path, ranks: QueryRanks) -> Path:
    """Write ``ranks`` as an ``.npz`` file (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        "i2t": ranks.i2t.astype(np.int32), "t2i": ranks.t2i.astype(np.int32),
        "caption_image": ranks.caption_image.astype(np.int32), "images": np.asarray(ranks.images, dtype=np.str_),
    }
    if ranks.twins is not None:
        arrays.update(twin_pairs=ranks.twins.pairs.astype(np.int32), twin_t2i_wins=ranks.twins.t2i_wins.astype(np.int32),
                      twin_t2i_total=ranks.twins.t2i_total.astype(np.int32),
                      twin_i2t_wins=ranks.twins.i2t_wins.astype(np.int32))
    with open(path, "wb") as handle:  # a file handle: numpy would otherwise append ".npz" to other names
        np.savez_compressed(handle, **arrays)
    return path


def load_ranks(path: str | Path) -> QueryRanks:
    """Read a file written by :func:`save_ranks`."""
    with np.load(Path(path), allow_pickle=False) as data:
        twins = None
        if "twin_pairs" in data.files:
            twins = TwinOutcomes(pairs=data["twin_pairs"].astype(np.int64), t2i_wins=data["twin_t2i_wins"].astype(np.int64),
                                 t2i_total=data["twin_t2i_total"].astype(np.int64),
                                 i2t_wins=data["twin_i2t_wins"].astype(np.int64))
        return QueryRanks(i2t=data["i2t"].astype(np.int64), t2i=data["t2i"].astype(np.int64),
                          caption_image=data["caption_image"].astype(np.int64),
                          images=tuple(str(x) for x in data["images"]), twins=twins)
