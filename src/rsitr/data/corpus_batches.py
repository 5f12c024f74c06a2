"""Fixed-size, deterministic, resumable training batches from a streamed corpus.

For continual CLIP pretraining on a caption corpus (RemoteCLIP, Liu et al. 2024;
GeoRSCLIP / RS5M, Zhang et al. 2024) read by ``rsitr.data.corpus``. A torch
``IterableDataset``: samples flow from the corpus (CSV or WebDataset, same order)
through an optional shuffle buffer seeded by (seed, epoch), are grouped into
batches of exactly ``batch_size`` (a last incomplete batch is dropped) and only
then decoded, transformed and tokenized. ``skip_batches=n`` resumes mid-epoch: the
first n batches are formed (same shuffle) but not decoded, so batch n+k of the
resumed run equals batch n+k of an uninterrupted one.

Use it with ``DataLoader(batches, batch_size=None, num_workers=0 or 1)``: more
workers would each read the whole stream, so they are refused.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import IterableDataset, get_worker_info

from rsitr.data.corpus import CorpusSample
from rsitr.errors import ConfigError

Transform = Callable[[Image.Image], torch.Tensor]  # RGB image -> [3, S, S]
Tokenize = Callable[[list[str]], torch.Tensor]  # B captions -> [B, L]


def shuffled(samples: Iterable[CorpusSample], buffer_size: int, rng: np.random.Generator) -> Iterator[CorpusSample]:
    """Shuffle-buffer order (as WebDataset's ``shuffle``): deterministic for a given ``rng``."""
    buffer: list[CorpusSample] = []
    for sample in samples:
        if len(buffer) < buffer_size:
            buffer.append(sample)
            continue
        index = int(rng.integers(buffer_size))
        yield buffer[index]
        buffer[index] = sample
    for index in rng.permutation(len(buffer)):
        yield buffer[int(index)]


def _groups(samples: Iterable[CorpusSample], size: int) -> Iterator[list[CorpusSample]]:
    group: list[CorpusSample] = []
    for sample in samples:
        group.append(sample)
        if len(group) == size:
            yield group
            group = []


def center_crop_tensor(size: int) -> Transform:
    """A plain transform: resize the short side to ``size``, centre-crop, scale to [0, 1]."""
    def transform(image: Image.Image) -> torch.Tensor:
        fitted = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BICUBIC)
        pixels = torch.from_numpy(np.asarray(fitted, dtype=np.float32) / 255.0)  # [S, S, 3]
        return pixels.permute(2, 0, 1).contiguous()  # [3, S, S]
    return transform


class CorpusBatches(IterableDataset):
    """Batches ``{"images": [B, 3, S, S], "tokens": [B, L], "captions": [B], "keys": [B]}``."""

    def __init__(self, corpus: Iterable[CorpusSample], batch_size: int, transform: Transform, tokenize: Tokenize, *,
                 skip_batches: int = 0, shuffle_buffer: int = 0, seed: int = 0, epoch: int = 0):
        if batch_size < 1 or skip_batches < 0 or shuffle_buffer < 0:
            raise ConfigError(f"batch_size={batch_size} must be >= 1, skip_batches={skip_batches} and "
                              f"shuffle_buffer={shuffle_buffer} >= 0")
        self.corpus, self.batch_size = corpus, batch_size
        self.transform, self.tokenize = transform, tokenize
        self.skip_batches, self.shuffle_buffer = skip_batches, shuffle_buffer
        self.seed, self.epoch = seed, epoch

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Move to ``epoch``, skipping its first ``skip_batches`` batches (0 for a fresh epoch)."""
        self.epoch, self.skip_batches = epoch, skip_batches

    def _collate(self, group: Sequence[CorpusSample]) -> dict[str, Any]:
        captions = [sample.caption for sample in group]
        return {
            "images": torch.stack([self.transform(sample.decode()) for sample in group]),  # [B, 3, S, S]
            "tokens": self.tokenize(captions),  # [B, L]
            "captions": captions,
            "keys": [sample.key for sample in group],
        }

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        if worker is not None and worker.num_workers > 1:
            raise ConfigError(f"CorpusBatches streams one corpus: use num_workers <= 1, not {worker.num_workers}")
        samples: Iterable[CorpusSample] = iter(self.corpus)
        if self.shuffle_buffer > 1:
            samples = shuffled(samples, self.shuffle_buffer, np.random.default_rng([self.seed, self.epoch]))
        for index, group in enumerate(_groups(samples, self.batch_size)):
            if index >= self.skip_batches:
                yield self._collate(group)


def corpus_batches(corpus: Iterable[CorpusSample], batch_size: int, transform: Transform, tokenize: Tokenize,
                   **options: int) -> CorpusBatches:
    """``CorpusBatches`` of ``corpus``; options: skip_batches, shuffle_buffer, seed, epoch."""
    return CorpusBatches(corpus, batch_size, transform, tokenize, **options)
