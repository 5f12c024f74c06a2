"""Batches for retrieval training and evaluation, read from the split manifest.

Training iterates over IMAGES, drawing one caption per image per epoch, so two captions
of one image never meet in a batch as each other's negatives (the sampling rule of the
RSITR protocol, see ``docs/methods.md``). Every random choice (caption, flips, 90 degree
rotations) is a function of ``(seed, epoch, index)``, so a resumed run sees exactly
the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from rsitr.config import AugmentParams
from rsitr.data.images import ImageLoader, augment
from rsitr.data.manifest import RetrievalSplit
from rsitr.training.distributed import DistributedContext, shard_batch_indices


class TrainPairs(Dataset):
    """One item per image: the image (augmented) with one of its captions, drawn per epoch."""

    def __init__(self, split: RetrievalSplit, loader: ImageLoader, augment_options: AugmentParams, seed: int):
        self.split = split
        self.loader = loader
        self.augment_options = augment_options
        self.seed = seed
        self.epoch = 0
        self.caption_lists = [split.captions_of(i) for i in range(split.num_images)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.split.num_images

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        caption_index = int(rng.choice(self.caption_lists[index]))
        image = augment(self.loader.uint8(self.split.image_paths[index]), rng, self.augment_options)
        return {
            "image": self.loader.normalize(image),
            "caption": self.split.captions[caption_index],
            "image_id": index,
            "caption_id": caption_index,
        }


def epoch_order(num_items: int, seed: int, epoch: int) -> list[int]:
    """The shuffled item order of an epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch, 7919]).permutation(num_items).tolist()


def train_batches(dataset: TrainPairs, batch_size: int, epoch: int, num_workers: int, tokenize,
                  context: Any = None) -> DataLoader:
    """Batches of an epoch: fixed order, last incomplete batch dropped when the set allows.

    Under data parallelism each rank reads its slice of every global batch
    (``rsitr.training.distributed.shard_batch_indices``), keeping one caption per image.
    """
    context = context or DistributedContext()
    dataset.set_epoch(epoch)
    order = epoch_order(len(dataset), dataset.seed, epoch)
    drop_last = len(dataset) > batch_size * context.world_size
    if context.enabled:
        order = shard_batch_indices(order, batch_size, context, drop_last=True)

    def collate(items: list[dict]) -> dict:
        captions = [item["caption"] for item in items]
        return {
            "images": torch.stack([item["image"] for item in items]),  # [B, 3, S, S]
            "tokens": tokenize(captions),  # [B, L]
            "captions": captions,
            "image_ids": torch.tensor([item["image_id"] for item in items]),  # [B]
            "caption_ids": torch.tensor([item["caption_id"] for item in items]),  # [B]
        }

    return DataLoader(
        dataset, batch_size=batch_size, sampler=order, drop_last=drop_last, num_workers=num_workers, collate_fn=collate
    )


def token_length_report(tokenizer, split: RetrievalSplit, context_length: int) -> dict[str, dict[str, float]]:
    """Per language: mean BPE length and the share of captions truncated at the context length.

    open_clip's byte-level BPE never produces unknown tokens (any UTF-8 byte is a symbol), but
    Arabic words split into many pieces, so captions can exceed a short context: this says
    how many do. ``distinct_token_ratio`` is distinct ids / all ids (a collapse shows as ~0).
    """
    encode = getattr(tokenizer, "encode", None)
    if encode is None:  # Hugging Face tokenizers count differently; nothing to report here
        return {}
    report: dict[str, dict[str, float]] = {}
    for language in sorted(set(split.caption_languages)):
        lengths, tokens = [], set()
        count = 0
        for caption, lang in zip(split.captions, split.caption_languages):
            if lang != language:
                continue
            ids = encode(caption)
            lengths.append(len(ids) + 2)  # + start and end of text
            tokens.update(ids)
            count += len(ids)
        array = np.array(lengths)
        report[language] = {
            "captions": int(array.size),
            "mean_tokens": float(array.mean()),
            "max_tokens": int(array.max()),
            "truncated_share": float((array > context_length).mean()),
            "distinct_token_ratio": len(tokens) / max(1, count),
        }
    return report
