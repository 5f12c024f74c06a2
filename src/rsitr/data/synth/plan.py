"""Planning a synthetic benchmark: scenes, twins, datasets, splits, copies, captions.

Everything random is drawn here (rendering only adds texture), from independent
``numpy.random.Generator`` streams keyed by (seed, purpose, index), so the plan
is a pure function of the seed and the parameters.

Image keys: distinct images are 0..n_images-1 (originals first, then twins);
near-duplicate copies follow. A twin pair moves as one unit, so a twin always
shares its original's dataset and split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rsitr.data.synth.captions import Caption, describe, weak_caption
from rsitr.data.synth.classes import SCENE_CLASSES
from rsitr.data.synth.near_duplicates import Transform, draw_transform
from rsitr.data.synth.scene import Scene, TwinChange, make_twin, sample_scene
from rsitr.data.synth.settings import Settings

PRECOMP = "synth_rsicd"
KARPATHY = "synth_sydney"

# Stream identifiers for child generators: default_rng([seed, STREAM, index, ...]).
STREAM_PLAN, STREAM_SCENE, STREAM_TWIN, STREAM_CAPTION, STREAM_COPY, STREAM_WEAK, STREAM_NOISE = range(7)


def child_rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """Independent generator for one purpose and one item."""
    return np.random.default_rng([seed, stream, *keys])


@dataclass
class PlannedImage:
    """One image file to be written, with everything the writers need."""

    key: int
    scene: Scene
    size_px: int
    role: str  # "single", "original", "twin" or "near_duplicate"
    dataset: str = ""
    split: str = ""
    filename: str = ""
    partner: "int | None" = None  # key of the twin (for an original), the original (twin), the source (copy)
    twin_change: "TwinChange | None" = None
    transform: "Transform | None" = None
    captions: list[Caption] = field(default_factory=list)

    @property
    def relpath(self) -> str:
        folder = f"{PRECOMP}/{PRECOMP}_images" if self.dataset == PRECOMP else f"{KARPATHY}/images"
        return f"{folder}/{self.filename}"


@dataclass(frozen=True)
class WeakCaption:
    """A caption replaced by one describing another class."""

    key: int
    caption_index: int
    true_class: str
    caption: Caption


@dataclass
class Plan:
    images: list[PlannedImage]  # indexed by key
    weak_captions: list[WeakCaption]


def _plan_scenes(settings: Settings, rng: np.random.Generator) -> list[PlannedImage]:
    n_pairs = round(settings.n_images * settings.twin_rate)
    n_bases = settings.n_images - n_pairs
    classes = rng.permutation(np.arange(n_bases) % len(SCENE_CLASSES))
    low, high = settings.image_size
    sizes = rng.integers(low, high + 1, size=n_bases)
    images = [
        PlannedImage(key, sample_scene(SCENE_CLASSES[int(classes[key])], child_rng(settings.seed, STREAM_SCENE, key)),
                     int(sizes[key]), "single")
        for key in range(n_bases)
    ]
    for offset, original_key in enumerate(sorted(int(k) for k in rng.choice(n_bases, n_pairs, replace=False))):
        original = images[original_key]
        twin_scene, change = make_twin(original.scene, child_rng(settings.seed, STREAM_TWIN, original_key))
        twin_key = n_bases + offset
        original.role, original.partner, original.twin_change = "original", twin_key, change
        images.append(PlannedImage(twin_key, twin_scene, original.size_px, "twin", partner=original_key,
                                   twin_change=change))
    return images


def _units(images: list[PlannedImage]) -> list[list[int]]:
    """Keys grouped so that a twin travels with its original."""
    return [[image.key] + ([image.partner] if image.role == "original" else [])
            for image in images if image.role in ("single", "original")]


def _fill(units: list[list[int]], capacity: int) -> tuple[list[list[int]], list[list[int]]]:
    """Greedy: take units in order while they fit in ``capacity`` images; return (taken, rest)."""
    taken, rest, used = [], [], 0
    for unit in units:
        if used + len(unit) <= capacity:
            taken.append(unit)
            used += len(unit)
        else:
            rest.append(unit)
    return taken, rest


def _assign(images: list[PlannedImage], units: list[list[int]], dataset: str, split: str) -> None:
    for unit in units:
        for key in unit:
            images[key].dataset, images[key].split = dataset, split


def _plan_datasets_and_splits(settings: Settings, images: list[PlannedImage], rng: np.random.Generator) -> None:
    units = _units(images)
    units = [units[int(i)] for i in rng.permutation(len(units))]
    karpathy, precomp = _fill(units, round(settings.n_images * settings.karpathy_share))
    n_precomp = sum(len(unit) for unit in precomp)
    n_karpathy = settings.n_images - n_precomp
    precomp_test, precomp_train = _fill(precomp, round(n_precomp * settings.test_share))
    _assign(images, precomp_test, PRECOMP, "test")
    _assign(images, precomp_train, PRECOMP, "train")
    karpathy_test, rest = _fill(karpathy, round(n_karpathy * settings.test_share))
    karpathy_val, karpathy_train = _fill(rest, round(n_karpathy * settings.test_share))
    _assign(images, karpathy_test, KARPATHY, "test")
    _assign(images, karpathy_val, KARPATHY, "val")
    _assign(images, karpathy_train, KARPATHY, "train")


def _plan_near_duplicates(settings: Settings, images: list[PlannedImage], rng: np.random.Generator) -> None:
    """Copies of precomp images into the Karpathy set; half of them test images landing in train."""
    test_keys = [image.key for image in images if image.dataset == PRECOMP and image.split == "test"]
    train_keys = [image.key for image in images if image.dataset == PRECOMP and image.split == "train"]
    n_copies = round((len(test_keys) + len(train_keys)) * settings.near_duplicate_rate)
    n_from_test = min(len(test_keys), math.ceil(n_copies / 2))
    n_from_train = min(len(train_keys), n_copies - n_from_test)
    sources = sorted(int(k) for k in rng.choice(test_keys, n_from_test, replace=False)) if n_from_test else []
    sources += sorted(int(k) for k in rng.choice(train_keys, n_from_train, replace=False)) if n_from_train else []
    karpathy_splits = ("train", "val", "test")
    split_weights = np.array([1.0 - 2 * settings.test_share, settings.test_share, settings.test_share])
    for source_key in sources:
        source = images[source_key]
        key = len(images)
        copy_rng = child_rng(settings.seed, STREAM_COPY, key)
        if source.split == "test":
            split = "train"  # cross-dataset leakage the split stage must remove
        else:
            split = karpathy_splits[int(copy_rng.choice(3, p=split_weights / split_weights.sum()))]
        images.append(PlannedImage(key, source.scene, source.size_px, "near_duplicate", KARPATHY, split,
                                   partner=source_key, transform=draw_transform(copy_rng)))


def _plan_filenames(images: list[PlannedImage], rng: np.random.Generator) -> None:
    per_class: dict[str, int] = {}
    for image in images:
        if image.dataset == PRECOMP:
            number = per_class.get(image.scene.scene_class, 0) + 1
            per_class[image.scene.scene_class] = number
            image.filename = f"{image.scene.scene_class}_{number}.jpg"
    karpathy_keys = [image.key for image in images if image.dataset == KARPATHY]
    for imgid, index in enumerate(rng.permutation(len(karpathy_keys))):
        images[karpathy_keys[int(index)]].filename = f"{imgid + 1}.tif"


def _plan_captions(settings: Settings, images: list[PlannedImage]) -> None:
    for image in images:
        must_mention = image.twin_change.attribute if image.twin_change is not None else None
        image.captions = describe(image.scene, child_rng(settings.seed, STREAM_CAPTION, image.key), must_mention)


def _plan_weak_captions(settings: Settings, images: list[PlannedImage], rng: np.random.Generator) -> list[WeakCaption]:
    """Replace one caption of randomly chosen images (never of a twin pair) by another class's caption."""
    total_captions = sum(len(image.captions) for image in images)
    eligible = [image.key for image in images if image.role in ("single", "near_duplicate")]
    n_weak = min(len(eligible), round(total_captions * settings.weak_caption_rate))
    chosen = sorted(int(k) for k in rng.choice(eligible, n_weak, replace=False)) if n_weak else []
    weak: list[WeakCaption] = []
    for number, key in enumerate(chosen):
        weak_rng = child_rng(settings.seed, STREAM_WEAK, number)
        index = int(weak_rng.integers(len(images[key].captions)))
        caption = weak_caption(images[key].scene.scene_class, weak_rng)
        images[key].captions[index] = caption
        weak.append(WeakCaption(key, index, images[key].scene.scene_class, caption))
    return weak


def plan_benchmark(settings: Settings) -> Plan:
    """Draw the complete plan of a benchmark for ``settings``."""
    rng = child_rng(settings.seed, STREAM_PLAN)
    images = _plan_scenes(settings, rng)
    _plan_datasets_and_splits(settings, images, rng)
    _plan_near_duplicates(settings, images, rng)
    _plan_filenames(images, rng)
    _plan_captions(settings, images)
    weak = _plan_weak_captions(settings, images, rng)
    return Plan(images, weak)
