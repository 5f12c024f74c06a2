"""Batches for retrieval training and evaluation, read from the split manifest.

An epoch visits every training CAPTION once (5N image-caption pairs for N images), as
PE-RSITR's and EBAKER's released code and every epoch count in the papers
(``docs/methods.md``, "Baseline"). Two captions of one image may share a batch; they are
never each other's negatives because every item carries a MASK id and the losses remove
same-id pairs from the negatives (``rsitr.losses.infonce.same_image_mask``). The mask id is
the image's near-duplicate CLUSTER from the dedup step when the manifest has one, so
near-duplicate images of the merged training set (e.g. RSICD and RSITMD copies of one
scene) count as one image too. Every random choice (flips, 90 degree rotations, the
epoch order) is a function of ``(seed, epoch, index)``, so a resumed run sees exactly the
batches an uninterrupted run would.
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


def mask_groups(split: RetrievalSplit) -> np.ndarray:
    """``[N]`` int64: the same-image mask id of every image, dense from 0.

    Images of one near-duplicate cluster share an id (``split.image_clusters``); without
    cluster information every image is its own group.
    """
    if not split.image_clusters:
        return np.arange(split.num_images, dtype=np.int64)
    _, groups = np.unique(np.asarray(split.image_clusters, dtype=np.int64), return_inverse=True)
    return groups.astype(np.int64).reshape(-1)


class TrainPairs(Dataset):
    """One item per training caption: the caption with its image (augmented) and mask id."""

    def __init__(self, split: RetrievalSplit, loader: ImageLoader, augment_options: AugmentParams, seed: int):
        self.split = split
        self.loader = loader
        self.augment_options = augment_options
        self.seed = seed
        self.epoch = 0
        self.groups = mask_groups(split)  # [N]

    @property
    def num_images(self) -> int:
        return self.split.num_images

    @property
    def num_groups(self) -> int:
        """Distinct images for the negatives: near-duplicates merged."""
        return int(np.unique(self.groups).size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split.captions)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image_index = int(self.split.caption_image[index])
        image = augment(self.loader.uint8(self.split.image_paths[image_index]), rng, self.augment_options)
        return {
            "image": self.loader.normalize(image),
            "caption": self.split.captions[index],
            "image_id": int(self.groups[image_index]),  # the same-image MASK id (cluster)
            "caption_id": index,
        }


def epoch_order(num_items: int, seed: int, epoch: int) -> list[int]:
    """The shuffled item order of an epoch: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch, 7919]).permutation(num_items).tolist()


def train_batches(dataset: TrainPairs, batch_size: int, epoch: int, num_workers: int, tokenize,
                  context: Any = None) -> DataLoader:
    """Batches of an epoch: fixed order, last incomplete batch dropped when the set allows.

    Under data parallelism each rank reads its slice of every global batch
    (``rsitr.training.distributed.shard_batch_indices``).
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
            "image_ids": torch.tensor([item["image_id"] for item in items]),  # [B] same-image mask ids
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
