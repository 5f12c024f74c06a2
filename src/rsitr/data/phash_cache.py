"""Content-addressed cache of image pHashes.

Hashing tens of thousands of remote-sensing images (RSICD + RSITMD + NWPU + UCM) takes
minutes; the merged-set dedup (:mod:`rsitr.data.dedup`) is re-run whenever a dataset is
added. The cache maps the SHA-1 of a file's *bytes* to its 64-bit pHash, so a re-run only
decodes new or changed files, and a file that is renamed or copied between dataset folders
is still a cache hit.

On disk it is one small JSON object::

    {"format": "rsitr-phash-cache", "version": 1, "hash": "imagehash.phash/8x8",
     "entries": {"<sha1 hex>": "<16 hex digits>", ...}}

An unreadable, foreign or older-format cache file is ignored with a warning (it is only a
cache; the hashes are recomputed) and overwritten on the next save. Saves are atomic
(write to a temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from rsitr.atomic import write_text
from rsitr.errors import DataError

logger = logging.getLogger(__name__)

CACHE_FORMAT = "rsitr-phash-cache"
CACHE_VERSION = 1
HASH_NAME = "imagehash.phash/8x8"


class PhashCache:
    """SHA-1 of file bytes -> 64-bit pHash, persisted as JSON at ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._entries: dict[str, int] = self._load()
        self._dirty = False

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, digest: object) -> bool:
        return digest in self._entries

    def digests(self) -> frozenset[str]:
        """The SHA-1 digests with a cached hash."""
        return frozenset(self._entries)

    def get(self, digest: str) -> int | None:
        """Cached pHash of the content with this SHA-1, or None."""
        return self._entries.get(digest)

    def put(self, digest: str, phash: int) -> None:
        """Record the pHash of the content with this SHA-1."""
        if self._entries.get(digest) != phash:
            self._entries[digest] = phash
            self._dirty = True

    def save(self) -> None:
        """Write the cache atomically if anything changed since it was loaded."""
        if not self._dirty and self.path.exists():
            return
        payload = {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "hash": HASH_NAME,
            "entries": {d: f"{h:016x}" for d, h in sorted(self._entries.items())},
        }
        try:
            write_text(self.path, json.dumps(payload, separators=(",", ":")))
        except OSError as exc:
            raise DataError(
                f"cannot write the pHash cache {self.path}: {exc}; "
                "choose a writable cache_path or pass cache_path=None"
            ) from exc
        self._dirty = False

    def _load(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        try:
            payload = json.loads(self.path.read_text(encoding="utf-8"))
            if (
                payload.get("format") != CACHE_FORMAT
                or payload.get("version") != CACHE_VERSION
                or payload.get("hash") != HASH_NAME
            ):
                raise ValueError("not an rsitr pHash cache of this version")
            return {str(d): int(h, 16) for d, h in payload["entries"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("ignoring unusable pHash cache %s (%s); hashes will be recomputed", self.path, exc)
            return {}
