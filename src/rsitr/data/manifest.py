"""The processed manifest as retrieval splits: images, captions and the caption -> image index.

The RSITR protocol (``docs/methods.md``, "Shared evaluation protocol") ties captions to
images by an explicit index, never by position arithmetic: ``RetrievalSplit.caption_image``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

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
    image_clusters: list[int] = field(default_factory=list)  # [N] near-duplicate cluster (dedup), when known

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
    cluster_of = dict(zip(rows["image_id"], rows["cluster"].astype("int64"))) if "cluster" in rows else {}
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
        image_clusters=[int(cluster_of[i]) for i in image_ids] if cluster_of else [],
    )
