"""``generate_corpus``: write a synthetic web-style image-caption corpus.

Layout of ``out_dir`` (RemoteCLIP / GeoRSCLIP conventions):

* ``images/<key>.jpg``: the images, keys ``0000000``, ``0000001`` ...;
* ``corpus.csv``: columns ``filepath,title``, comma-separated, one row per image
  in key order, ``filepath`` relative to the CSV's folder (open_clip_train reads
  it with ``--csv-img-key filepath --csv-caption-key title --csv-separator ,``);
* ``shards/corpus-000000.tar`` ...: WebDataset shards of ``shard_size`` samples,
  ``<key>.jpg`` + ``<key>.txt`` with the same bytes and order as the CSV;
* ``corpus_report.json``: parameters, counts, share of wrong and noisy captions,
  class and caption-style histograms, and the keys of the wrong captions.

Output is byte-identical for the same seed and parameters (and Pillow build),
whatever ``workers``: each image is a pure function of (seed, index), the tar
headers are fixed, and the report holds no timings or absolute paths. Files are
written into ``.corpus_partial/`` and moved into place at the end, the report
last, so a killed run leaves no half corpus behind.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import signal
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from rsitr.data.synth_corpus.items import MadeItem, make_item, make_item_star
from rsitr.data.synth_corpus.plan import CorpusItem, check_parameters, plan_corpus
from rsitr.data.synth_corpus.shards import ShardWriter
from rsitr.errors import ConfigError, DataError

CSV_FILE = "corpus.csv"
REPORT_FILE = "corpus_report.json"
IMAGES_DIR = "images"
SHARDS_DIR = "shards"
STAGING_DIR = ".corpus_partial"
CSV_COLUMNS: tuple[str, str] = ("filepath", "title")
FORMAT_VERSION = "rsitr-synth-corpus/1"
CHUNK_SIZE: int = 32


def _made_items(seed: int, plan: list[CorpusItem], workers: int) -> Iterator[MadeItem]:
    """Made items in key order; ``workers > 1`` makes them in a process pool (same bytes)."""
    if workers <= 1:
        yield from (make_item(seed, item) for item in plan)
        return
    with multiprocessing.get_context().Pool(workers, initializer=_default_sigterm) as pool:
        yield from pool.imap(make_item_star, ((seed, item) for item in plan), chunksize=CHUNK_SIZE)
        pool.close()  # let the workers exit; the context's terminate() then signals no one
        pool.join()


def _default_sigterm() -> None:
    """Pool workers die on SIGTERM (Pool.terminate) instead of running a handler inherited from the caller."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _prepare_staging(out_dir: Path) -> Path:
    ours = (out_dir / REPORT_FILE).exists()
    for name in (IMAGES_DIR, SHARDS_DIR, CSV_FILE):
        if (out_dir / name).exists() and not ours:
            raise DataError(f"{out_dir / name} exists but {out_dir / REPORT_FILE} does not, so it was not written "
                            f"by generate_corpus; remove it or choose another out_dir")
    staging = out_dir / STAGING_DIR
    if staging.exists():
        shutil.rmtree(staging)
    (staging / IMAGES_DIR).mkdir(parents=True)
    (staging / SHARDS_DIR).mkdir()
    return staging


def _write_items(staging: Path, made: Iterator[MadeItem], total: int, shard_size: int,
                 progress: bool) -> tuple[list[MadeItem], list[str]]:
    """Write images, CSV rows and shards; return the made items without their bytes, and the shard names."""
    kept: list[MadeItem] = []
    with open(staging / CSV_FILE, "w", encoding="utf-8", newline="") as handle, \
            ShardWriter(staging / SHARDS_DIR, shard_size) as shards:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for entry in tqdm(made, total=total, desc="synth-corpus", unit="img", disable=not progress):
            key = entry.item.key
            (staging / IMAGES_DIR / f"{key}.jpg").write_bytes(entry.jpeg)
            writer.writerow((f"{IMAGES_DIR}/{key}.jpg", entry.caption))
            shards.write(key, {"jpg": entry.jpeg, "txt": entry.caption.encode("utf-8")})
            kept.append(MadeItem(entry.item, b"", entry.caption, entry.style))
    return kept, shards.names


def _report(made: list[MadeItem], shard_names: list[str], parameters: dict) -> dict:
    n_images = len(made)
    wrong_keys = [entry.item.key for entry in made if entry.item.wrong]
    n_noisy = sum(entry.item.noisy for entry in made)
    return {
        "format": FORMAT_VERSION,
        "parameters": parameters,
        "n_images": n_images,
        "n_shards": len(shard_names),
        "files": {"csv": CSV_FILE, "images": IMAGES_DIR, "shards": [f"{SHARDS_DIR}/{name}" for name in shard_names]},
        "n_wrong_captions": len(wrong_keys),
        "wrong_caption_share": len(wrong_keys) / n_images,
        "n_noisy_captions": n_noisy,
        "noisy_caption_share": n_noisy / n_images,
        "class_histogram": dict(sorted(Counter(entry.item.scene_class for entry in made).items())),
        "caption_style_histogram": dict(sorted(Counter(entry.style for entry in made).items())),
        "wrong_caption_keys": wrong_keys,
    }


def _publish(staging: Path, out_dir: Path) -> None:
    """Replace a previous corpus in ``out_dir`` by the staged one; the report goes last."""
    (out_dir / REPORT_FILE).unlink(missing_ok=True)
    for name in (IMAGES_DIR, SHARDS_DIR):
        if (out_dir / name).exists():
            shutil.rmtree(out_dir / name)
        (staging / name).rename(out_dir / name)
    (staging / CSV_FILE).replace(out_dir / CSV_FILE)
    (staging / REPORT_FILE).replace(out_dir / REPORT_FILE)
    staging.rmdir()


@dataclass(frozen=True)
class CorpusOptions:
    """The knobs of ``generate_corpus`` besides size and seed; the defaults are its defaults.

    ``image_size`` is the (min, max) side in pixels of the square images; ``workers`` > 1
    renders in that many processes (the output does not depend on it).
    """

    image_size: tuple[int, int] = (64, 96)
    wrong_caption_rate: float = 0.05
    noise_word_rate: float = 0.25
    shard_size: int = 1000
    workers: int = 1


def generate_corpus(out_dir: "str | Path", n_images: int = 10_000, seed: int = 0,
                    options: CorpusOptions | None = None, *, progress: bool = True) -> dict:
    """Generate the corpus into ``out_dir`` and return its report (also written as ``corpus_report.json``).

    ``options`` holds the image sizes, caption noise, shard size and worker count
    (defaults: ``CorpusOptions()``). A previous corpus in ``out_dir`` is replaced.
    Raises ``ConfigError`` for invalid parameters.
    """
    options = options or CorpusOptions()
    image_size = (int(options.image_size[0]), int(options.image_size[1]))
    wrong_caption_rate, noise_word_rate = options.wrong_caption_rate, options.noise_word_rate
    shard_size, workers = options.shard_size, options.workers
    check_parameters(n_images, image_size, wrong_caption_rate, noise_word_rate, shard_size)
    if workers < 1:
        raise ConfigError(f"workers={workers} must be >= 1")
    out_path = Path(out_dir)
    out_path.mkdir(parents=True, exist_ok=True)
    staging = _prepare_staging(out_path)
    plan = plan_corpus(n_images, seed, image_size, wrong_caption_rate, noise_word_rate)
    made, shard_names = _write_items(staging, _made_items(seed, plan, workers), n_images, shard_size, progress)
    parameters = {"n_images": n_images, "seed": seed, "image_size": list(image_size), "shard_size": shard_size,
                  "wrong_caption_rate": wrong_caption_rate, "noise_word_rate": noise_word_rate}
    report = _report(made, shard_names, parameters)
    (staging / REPORT_FILE).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    _publish(staging, out_path)
    return report
