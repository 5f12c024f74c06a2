"""Deterministic WebDataset shard writing: ``<key>.jpg`` + ``<key>.txt`` per sample.

The WebDataset convention (also used by RS5M's and open_clip's ``--dataset-type
webdataset`` loaders): a POSIX tar whose consecutive members sharing a key (the
name up to its first dot) form one sample. Every header carries fixed metadata
(mtime, uid/gid, owner names, mode) and members are written in key order, so the
same samples give the same bytes.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

SHARD_PATTERN = "corpus-{:06d}.tar"
FIXED_MTIME: int = 946_684_800  # 2000-01-01T00:00:00Z
FILE_MODE: int = 0o644


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


class ShardWriter:
    """Writes samples into ``corpus-000000.tar``, ``corpus-000001.tar`` ... of ``shard_size`` samples."""

    def __init__(self, folder: Path, shard_size: int):
        self.folder = folder
        self.shard_size = shard_size
        self.names: list[str] = []
        self._tar: "tarfile.TarFile | None" = None
        self._in_shard = 0

    def _open_next(self) -> tarfile.TarFile:
        self.close()
        name = SHARD_PATTERN.format(len(self.names))
        self.names.append(name)
        self._tar = tarfile.open(self.folder / name, "w", format=tarfile.USTAR_FORMAT)
        self._in_shard = 0
        return self._tar

    def write(self, key: str, files: dict[str, bytes]) -> None:
        """Add one sample; ``files`` maps extension ("jpg", "txt") to content, written in sorted order."""
        tar = self._tar if self._tar is not None and self._in_shard < self.shard_size else self._open_next()
        for extension in sorted(files):
            tar.addfile(_member(f"{key}.{extension}", len(files[extension])), io.BytesIO(files[extension]))
        self._in_shard += 1

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
