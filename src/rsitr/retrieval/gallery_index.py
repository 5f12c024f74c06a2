"""The on-disk gallery index of coarse-to-fine retrieval (CFITR): its layout, and loading it.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024) precomputes the gallery's hash codes so a
query costs one Hamming scan plus a fine re-score of K candidates. An index
(``rsitr.retrieval.gallery_build.build_index`` writes it) is one directory::

    index.json          the manifest, written last (its presence = a complete index)
    items.parquet       id (path relative to the images folder) and absolute path per item
    codes.npy           uint8 [N, bits / 8]   packed sign codes of the image hash head (absent when
                        the model has no hash heads: such an index is searched by a float coarse stage)
    emb_<key>.npy       float16 [N, ...]      every output of ``model.embed_images``
                        ("global"; EBAKER adds "tokens", which its fine scorer needs)
    hub_text.npy        float32 [N]  PPSR gallery term for text queries (see hamming_search.py)
    hub_image.npy       float32 [N]  PPSR gallery term for image queries
    hash_heads.pt       a copy of the heads that made the codes (queries need the same)

``GalleryIndex.load`` memory-maps the arrays read-only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rsitr.errors import DataError, ModelError
from rsitr.retrieval.hamming_search import HammingIndex
from rsitr.retrieval.hash_head import HashHeads, load_hash_heads

__all__ = ["BUILD_DIR", "GalleryIndex", "INDEX_FILE", "INDEX_FORMAT", "sha256_file"]

INDEX_FORMAT = "rsitr-gallery-index-v1"
INDEX_FILE = "index.json"
BUILD_DIR = "_build"  # a partial build in progress (see gallery_build.py)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (e.g. the checkpoint an index was built from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- loading


@dataclass
class GalleryIndex:
    """A built index, arrays memory-mapped read-only."""

    root: Path
    manifest: dict[str, Any]
    ids: list[str]
    paths: list[str]
    codes: np.ndarray | None  # uint8 [N, bits / 8]; None: built without hash heads
    embeddings: dict[str, np.ndarray]  # name -> float16 [N, ...] (memmap)
    hubness: dict[str, np.ndarray] = field(default_factory=dict)  # "text"/"image" -> float32 [N]

    @classmethod
    def load(cls, root: str | Path) -> "GalleryIndex":
        import pandas as pd

        root = Path(root)
        manifest_file = root / INDEX_FILE
        if not manifest_file.is_file():
            partial = " (a partial build is there: re-run `rsitr index build` to resume it)" if (root / BUILD_DIR).exists() else ""
            raise DataError(f"no gallery index at {str(root)!r}{partial}")
        manifest = json.loads(manifest_file.read_text())
        if manifest.get("format") != INDEX_FORMAT:
            raise DataError(f"{str(root)!r} is not an rsitr gallery index (expected format {INDEX_FORMAT})")
        items = pd.read_parquet(root / manifest["items"])
        return cls(
            root=root,
            manifest=manifest,
            ids=items["id"].astype(str).tolist(),
            paths=items["path"].astype(str).tolist(),
            codes=np.load(root / manifest["codes"]) if manifest.get("codes") else None,
            embeddings={k: np.load(root / v["file"], mmap_mode="r") for k, v in manifest["embeddings"].items()},
            hubness={k: np.load(root / v) for k, v in manifest["hubness"].items()},
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def bits(self) -> int | None:
        return None if self.manifest.get("bits") is None else int(self.manifest["bits"])

    @property
    def has_codes(self) -> bool:
        return self.codes is not None

    def _require_codes(self) -> None:
        if self.codes is None:
            raise ModelError(f"index {str(self.root)!r} has no hash codes (its model has no hash heads); search it "
                             "with a float coarse stage (hnsw, ivf, exact)")

    @cached_property
    def hamming(self) -> HammingIndex:
        self._require_codes()
        return HammingIndex(self.codes)

    def load_heads(self) -> tuple[HashHeads, dict[str, Any]]:
        self._require_codes()
        return load_hash_heads(self.root / self.manifest["hash_heads"])
