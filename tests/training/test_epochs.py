"""An epoch visits every training caption once; near-duplicates and same-image captions are never negatives.

docs/methods.md ("Baseline"): an epoch is 5N image-caption pairs; the merged training set
is deduplicated, so near-duplicate images count as one image for the negatives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from toy_data import make_toy_benchmark, toy_params_dict
from rsitr.app.steps.training import fit
from rsitr.config import AugmentParams, params_from_dict
from rsitr.data.images import ImageLoader
from rsitr.data.manifest import select_split
from rsitr.losses.infonce import masked_cross_entropy, same_image_mask
from rsitr.training.data import TrainPairs, train_batches


class RecordingTracker:
    run_id = None

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def log_metrics(self, values: dict[str, float], step: int | None = None) -> None:
        self.metrics.update(values)


def _with_arabic(root: Path) -> Path:
    """Add two Arabic captions to every image of the toy manifest (parallel captions)."""
    path = root / "processed" / "manifest.parquet"
    manifest = pd.read_parquet(path)
    english = manifest[manifest["caption_index"] < 2]
    arabic = english.assign(language="ar", caption="حقل " + english["caption"])
    pd.concat([manifest, arabic], ignore_index=True).to_parquet(path)
    return root


@pytest.fixture(scope="module")
def bilingual_toy(tmp_path_factory) -> Path:
    return _with_arabic(make_toy_benchmark(tmp_path_factory.mktemp("toy_ar"), n_images=30))


@pytest.mark.parametrize("languages", [["en"], ["ar"], ["en", "ar"]])
def test_train_pairs_metric_is_the_number_of_training_captions(bilingual_toy, tmp_path, languages, single_torch_thread):
    raw = toy_params_dict(bilingual_toy, epochs=1, batch_size=8)
    raw["paths"]["models"] = str(tmp_path / "models")
    raw["variants"]["finetune"]["train"] = {"languages": languages}
    tracker = RecordingTracker()
    fit(params_from_dict(raw), "finetune", progress=False, tracker=tracker)
    manifest = pd.read_parquet(bilingual_toy / "processed" / "manifest.parquet")
    captions = int(((manifest["split"] == "train") & manifest["language"].isin(languages)).sum())
    assert captions == 20 * (5 * ("en" in languages) + 2 * ("ar" in languages))
    assert tracker.metrics["train_pairs"] == captions
    assert tracker.metrics["train_images"] == 20
    assert tracker.metrics["steps_per_pass"] == captions // 8


def _two_datasets_with_planted_duplicates(root: Path) -> pd.DataFrame:
    """Two training datasets; image k of ``b`` is a near-duplicate of image k of ``a`` for k < 3."""
    toy = pd.read_parquet(make_toy_benchmark(root, n_images=12) / "processed" / "manifest.parquet")
    train = toy[toy["split"] == "train"]  # 8 images
    a = train[train["image_key"].isin([f"{i}.png" for i in range(4)])].copy()
    b = train[train["image_key"].isin([f"{i}.png" for i in range(4, 8)])].copy()
    a["dataset"], b["dataset"] = "a", "b"
    a["image_id"] = "a/" + a["image_key"]
    b["image_id"] = "b/" + b["image_key"]
    a["cluster"] = a["image_key"].str[0].astype(int)  # 0..3
    b["cluster"] = b["image_key"].str[0].astype(int) - 4 + np.where(b["image_key"] == "7.png", 100, 0)  # 0,1,2,103
    return pd.concat([a, b], ignore_index=True)


def test_planted_near_duplicates_across_training_sets_are_one_image(tmp_path):
    manifest = _two_datasets_with_planted_duplicates(tmp_path)
    split = select_split(manifest, "train")
    assert split.num_images == 8 and len(split.captions) == 40
    pairs = TrainPairs(split, ImageLoader(32, (0.5,) * 3, (0.5,) * 3), AugmentParams(), seed=0)
    assert len(pairs) == 40 and pairs.num_groups == 5  # 3 duplicated scenes + a/3 + b/7
    batch = next(iter(train_batches(pairs, 40, 0, 0, lambda captions: torch.zeros(len(captions), 4, dtype=torch.long))))
    assert sorted(batch["caption_ids"].tolist()) == list(range(40))  # every caption once
    dataset_of = [split.caption_datasets[i] for i in batch["caption_ids"].tolist()]
    cluster_of = [split.image_clusters[int(split.caption_image[i])] for i in batch["caption_ids"].tolist()]
    mask = same_image_mask(batch["image_ids"], 40, torch.device("cpu"))  # [B, B]
    for i in range(40):
        for j in range(40):
            expected = i != j and cluster_of[i] == cluster_of[j]
            assert bool(mask[i, j]) == expected, (i, j)
    cross = [(i, j) for i in range(40) for j in range(40) if mask[i, j] and dataset_of[i] != dataset_of[j]]
    assert len(cross) == 3 * 2 * 25  # a/k <-> b/k+4 for k < 3, 5 x 5 captions each, both orders
    # the loss: a near-duplicate's caption is not a negative (its logit does not move the loss), others are
    logits = torch.randn(40, 40, generator=torch.Generator().manual_seed(0))  # [B, B]
    i, j = cross[0]
    k = next(k for k in range(40) if not mask[i, k] and k != i)
    base = masked_cross_entropy(logits, mask)
    bumped = logits.clone()
    bumped[i, j] += 5.0
    assert torch.equal(masked_cross_entropy(bumped, mask), base)
    bumped[i, k] += 5.0
    assert masked_cross_entropy(bumped, mask) > base


def test_without_clusters_every_image_is_its_own_group(tmp_path):
    manifest = _two_datasets_with_planted_duplicates(tmp_path).drop(columns=["cluster"])
    split = select_split(manifest, "train")
    pairs = TrainPairs(split, ImageLoader(32, (0.5,) * 3, (0.5,) * 3), AugmentParams(), seed=0)
    assert pairs.num_groups == 8
