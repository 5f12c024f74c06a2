"""``generate_benchmark``: write a synthetic RSITR benchmark with known ground truth.

Two sub-datasets in the real on-disk formats (``synth_rsicd`` precomp like RSICD,
``synth_sydney`` Karpathy JSON like Sydney-captions) plus ``ground_truth.json``.
Planted defects: fine-grained twins, weak (wrong-class) captions, and near-duplicate
copies of precomp images inside the Karpathy set, some of them test images copied
into train.

pHash guarantees, checked while rendering with the same hash as ``imagehash.phash``:
every two distinct images are at Hamming distance >= ``MIN_DISTINCT_DISTANCE``
(a render that comes too close is redrawn with another noise seed and stronger
illumination noise), and every planted copy is within ``MAX_COPY_DISTANCE`` of
its original. So a pHash deduplication at distance <= 2 finds exactly the planted
pairs.

Output is byte-identical for the same seed and parameters (with the same Pillow
build): all randomness comes from seeded ``numpy.random.Generator`` streams, files
carry no timestamps and JSON keys are sorted.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from rsitr.data.synth.encoding import decode, encode_for
from rsitr.data.synth.ground_truth import build_ground_truth, summarize
from rsitr.data.synth.near_duplicates import apply_transform, draw_transform
from rsitr.data.synth.phash import hamming, min_distance, phash
from rsitr.data.synth.plan import (
    KARPATHY,
    PRECOMP,
    STREAM_COPY,
    STREAM_NOISE,
    Plan,
    PlannedImage,
    child_rng,
    plan_benchmark,
)
from rsitr.data.synth.render import render_scene
from rsitr.data.synth.settings import BenchmarkOptions, Settings, make_settings
from rsitr.data.synth.writers import write_json, write_karpathy, write_precomp
from rsitr.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

GROUND_TRUTH_FILE = "ground_truth.json"
STAGING_DIR = ".synth_partial"
MIN_DISTINCT_DISTANCE: int = 10
MAX_COPY_DISTANCE: int = 2
MAX_ATTEMPTS: int = 12
NOISE_BOOST_PER_ATTEMPT: float = 0.35


def _check_splits(plan: Plan) -> None:
    present = {(image.dataset, image.split) for image in plan.images}
    for dataset, splits in ((PRECOMP, ("train", "test")), (KARPATHY, ("train", "val", "test"))):
        for split in splits:
            if (dataset, split) not in present:
                raise ConfigError(f"split {dataset}/{split} would be empty; raise n_images or adjust "
                                  f"karpathy_share / test_share")


def _render_distinct(settings: Settings, images: list[PlannedImage], staging: Path,
                     phashes: dict[int, int]) -> dict[int, Image.Image]:
    """Render, encode and write every distinct image; return decoded copy sources."""
    sources = {image.partner for image in images if image.role == "near_duplicate"}
    accepted = np.zeros(len(images), dtype=np.uint64)
    n_accepted = 0
    decoded_sources: dict[int, Image.Image] = {}
    for image in images:
        if image.role == "near_duplicate":
            continue
        for attempt in range(MAX_ATTEMPTS):
            picture = render_scene(image.scene, image.size_px, [settings.seed, STREAM_NOISE, image.key, attempt],
                                   1.0 + NOISE_BOOST_PER_ATTEMPT * attempt)
            data = encode_for(image.filename, picture)
            decoded = decode(data)
            image_hash = phash(decoded)
            if min_distance(image_hash, accepted[:n_accepted]) >= MIN_DISTINCT_DISTANCE:
                break
        else:
            raise DataError(f"could not render {image.relpath} at pHash distance >= {MIN_DISTINCT_DISTANCE} "
                            f"from every other image in {MAX_ATTEMPTS} attempts; try another seed")
        if attempt:
            logger.debug("%s redrawn %d time(s) to stay pHash-distinct", image.relpath, attempt)
        (staging / image.relpath).write_bytes(data)
        accepted[n_accepted] = np.uint64(image_hash)
        n_accepted += 1
        phashes[image.key] = image_hash
        if image.key in sources:
            decoded_sources[image.key] = decoded
    return decoded_sources


def _render_copies(settings: Settings, images: list[PlannedImage], staging: Path, phashes: dict[int, int],
                   decoded_sources: dict[int, Image.Image]) -> None:
    """Write each planted copy; redraw its transform until it is a pHash near-duplicate."""
    for image in images:
        if image.role != "near_duplicate" or image.partner is None or image.transform is None:
            continue
        transform = image.transform
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                transform = draw_transform(child_rng(settings.seed, STREAM_COPY, image.key, attempt))
            data = encode_for(image.filename, apply_transform(decoded_sources[image.partner], transform))
            image_hash = phash(decode(data))
            if hamming(image_hash, phashes[image.partner]) <= MAX_COPY_DISTANCE:
                break
        else:
            raise DataError(f"could not make {image.relpath} a pHash near-duplicate of "
                            f"{images[image.partner].relpath}; try another seed")
        image.transform = transform
        image.size_px = decode(data).width  # a resize transform changes the side
        (staging / image.relpath).write_bytes(data)
        phashes[image.key] = image_hash


def _prepare_staging(out_dir: Path) -> Path:
    for name in (PRECOMP, KARPATHY):
        if (out_dir / name).exists() and not (out_dir / GROUND_TRUTH_FILE).exists():
            raise DataError(f"{out_dir / name} exists but {out_dir / GROUND_TRUTH_FILE} does not, so it was not "
                            f"written by generate_benchmark; remove it or choose another out_dir")
    staging = out_dir / STAGING_DIR
    if staging.exists():
        shutil.rmtree(staging)
    (staging / PRECOMP / f"{PRECOMP}_images").mkdir(parents=True)
    (staging / KARPATHY / "images").mkdir(parents=True)
    return staging


def _publish(staging: Path, out_dir: Path) -> None:
    """Replace a previous benchmark in ``out_dir`` by the staged one."""
    for name in (PRECOMP, KARPATHY):
        if (out_dir / name).exists():
            shutil.rmtree(out_dir / name)
        (staging / name).rename(out_dir / name)
    (staging / GROUND_TRUTH_FILE).replace(out_dir / GROUND_TRUTH_FILE)
    staging.rmdir()


def generate_benchmark(out_dir: "str | Path", n_images: int, seed: int,
                       options: BenchmarkOptions | None = None) -> dict:
    """Generate the synthetic benchmark into ``out_dir`` and return its summary.

    ``n_images`` counts distinct images (twins included); near-duplicate copies are
    extra files. ``options`` holds the rates, shares and image sizes (defaults:
    ``BenchmarkOptions()``). A previous benchmark in ``out_dir`` is replaced. Raises
    ``ConfigError`` for invalid parameters.
    """
    settings = make_settings(n_images, seed, options or BenchmarkOptions())
    plan = plan_benchmark(settings)
    _check_splits(plan)
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    staging = _prepare_staging(out_path)
    phashes: dict[int, int] = {}
    decoded_sources = _render_distinct(settings, plan.images, staging, phashes)
    _render_copies(settings, plan.images, staging, phashes, decoded_sources)
    write_precomp(staging / PRECOMP, plan.images, settings.arabic)
    write_karpathy(staging / KARPATHY, plan.images, settings.arabic)
    summary = summarize(settings, plan)
    write_json(staging / GROUND_TRUTH_FILE, build_ground_truth(settings, plan, summary, phashes), indent=1)
    _publish(staging, out_path)
    return summary
