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
from rsitr.data.arabic import normalize_caption
from rsitr.errors import DataError


@dataclass
class RetrievalSplit:
    """Images and captions of one split, with the explicit caption -> image index."""

    image_ids: list[str]  # [N]
    image_paths: list[str]  # [N]
    captions: list[str]  # [C]
    caption_image: np.ndarray  # [C] int64 index into image_ids
    caption_languages: list[str]  # [C]
    caption_datasets: list[str] = field(default_factory=list)  # [C]

    @property
    def num_images(self) -> int:
        return len(self.image_ids)

    def captions_of(self, image_index: int) -> np.ndarray:
        return np.flatnonzero(self.caption_image == image_index)


def read_manifest(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"split manifest {str(path)!r} not found; run the data stages first (`dvc repro split`)")
    return pd.read_parquet(path)


def select_split(
    manifest: pd.DataFrame,
    split: str,
    *,
    datasets: Sequence[str] = (),
    languages: Sequence[str] = ("en",),
    normalize_arabic: bool = True,
) -> RetrievalSplit:
    """Rows of ``split`` (train/val/test), optionally restricted to datasets and languages.

    Arabic captions are normalised (tashkeel, tatweel, alef/yeh variants) when asked, the
    same way at training and evaluation time.
    """
    rows = manifest[manifest["split"] == split]
    if datasets:
        rows = rows[rows["dataset"].isin(list(datasets))]
    if languages:
        rows = rows[rows["language"].isin(list(languages))]
    if rows.empty:
        raise DataError(
            f"no {split} captions for datasets {list(datasets) or 'all'} in languages {list(languages)}; "
            "check train.datasets / eval.test_sets / *.languages in params.yaml"
        )
    rows = rows.sort_values(["dataset", "image_id", "language", "caption_index"], kind="stable")
    image_ids, first = np.unique(rows["image_id"].to_numpy(), return_index=True)
    order = np.argsort(first)  # keep first-appearance order
    image_ids = image_ids[order]
    index_of = {image_id: i for i, image_id in enumerate(image_ids)}
    path_of = dict(zip(rows["image_id"], rows["image_path"]))
    captions = rows["caption"].astype(str).tolist()
    caption_languages = rows["language"].astype(str).tolist()
    if normalize_arabic:
        captions = [normalize_caption(c, lang) for c, lang in zip(captions, caption_languages)]
    return RetrievalSplit(
        image_ids=list(image_ids),
        image_paths=[path_of[i] for i in image_ids],
        captions=captions,
        caption_image=np.array([index_of[i] for i in rows["image_id"]], dtype=np.int64),
        caption_languages=caption_languages,
        caption_datasets=rows["dataset"].astype(str).tolist(),
    )


class ImageLoader:
    """Decode, resize (shorter side, bicubic), centre-crop and normalise images; caches small sets."""

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float], cache: bool = True):
        self.image_size = image_size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.cache: dict[str, torch.Tensor] | None = {} if cache else None

    def uint8(self, path: str) -> torch.Tensor:
        """``[3, S, S]`` uint8."""
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                width, height = image.size
                scale = self.image_size / min(width, height)
                size = (max(self.image_size, round(width * scale)), max(self.image_size, round(height * scale)))
                image = image.resize(size, Image.Resampling.BICUBIC)
                left = (size[0] - self.image_size) // 2
                top = (size[1] - self.image_size) // 2
                image = image.crop((left, top, left + self.image_size, top + self.image_size))
                array = np.asarray(image, dtype=np.uint8).copy()
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read image {path!r} ({exc}); re-run `rsitr data ingest` to list bad files") from None
        tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()  # [3, S, S]
        if self.cache is not None:
            self.cache[path] = tensor
        return tensor

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image.float() / 255.0 - self.mean) / self.std  # [3, S, S]


def augment(image: torch.Tensor, rng: np.random.Generator, options: AugmentParams) -> torch.Tensor:
    """Random flips and 90 degree rotations of a ``[3, S, S]`` image."""
    if options.hflip and rng.random() < 0.5:
        image = image.flip(-1)
    if options.vflip and rng.random() < 0.5:
        image = image.flip(-2)
    if options.rot90:
        turns = int(rng.integers(0, 4))
        if turns:
            image = torch.rot90(image, turns, dims=(-2, -1))
    return image


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
    from rsitr.training.distributed import DistributedContext, shard_batch_indices

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


class EvalImages(Dataset):
    def __init__(self, paths: Sequence[str], loader: ImageLoader):
        self.paths = list(paths)
        self.loader = loader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.loader.normalize(self.loader.uint8(self.paths[index]))


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
