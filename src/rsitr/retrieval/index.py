"""A resumable on-disk gallery index for coarse-to-fine retrieval (CFITR).

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024) precomputes the gallery's hash codes so a
query costs one Hamming scan plus a fine re-score of K candidates. ``build_index`` encodes
a folder of images once and stores, in one directory::

    index.json          the manifest, written last (its presence = a complete index)
    items.parquet       id (path relative to the images folder) and absolute path per item
    codes.npy           uint8 [N, bits / 8]   packed sign codes of the image hash head (absent when
                        the model has no hash heads: such an index is searched by a float coarse stage)
    emb_<key>.npy       float16 [N, ...]      every output of ``model.embed_images``
                        ("global"; EBAKER adds "tokens", which its fine scorer needs)
    hub_text.npy        float32 [N]  PPSR gallery term for text queries (see search.py)
    hub_image.npy       float32 [N]  PPSR gallery term for image queries
    hash_heads.pt       a copy of the heads that made the codes (queries need the same)

Resuming: the work is cut into chunks of ``chunk_size`` images. Each finished chunk is
written to ``_build/chunk_NNNNN.npz`` (temporary file + rename) and then recorded in
``_build/build.json`` (also replaced atomically), so an interrupted build restarts at the
first unrecorded chunk. ``build.json`` carries a fingerprint of everything the arrays
depend on (model checkpoint, heads, image list, chunk and batch size, PPSR k); a
mismatch refuses to mix two builds. The final assembly streams the chunks into
memory-mapped ``.npy`` files, writes ``index.json`` and removes ``_build``. Chunks are
encoded in the same batches whether or not the build was interrupted, so a resumed build
is byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rsitr.atomic import write_bytes, write_text
from rsitr.data.images import ImageLoader
from rsitr.errors import DataError, ModelError
from rsitr.retrieval.hash_head import HASH_HEADS_FILE, HashHeads, load_hash_heads, save_hash_heads
from rsitr.retrieval.search import HammingIndex, reference_hubness

__all__ = [
    "GalleryIndex",
    "IMAGE_EXTENSIONS",
    "INDEX_FORMAT",
    "build_index",
    "list_images",
]

INDEX_FORMAT = "rsitr-gallery-index-v1"
INDEX_FILE = "index.json"
BUILD_DIR = "_build"
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})


# ----------------------------------------------------------------------------- images


def list_images(folder: str | Path) -> tuple[list[str], list[str]]:
    """``(ids, paths)`` of every image under ``folder`` (recursive), sorted by id.

    The id is the POSIX path relative to ``folder``; the path is absolute.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"images folder {str(root)!r} not found")
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {str(root)!r}")
    return [p.relative_to(root).as_posix() for p in files], [str(p.resolve()) for p in files]


# ----------------------------------------------------------------------------- building


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (e.g. the checkpoint an index was built from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_state(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _write_json_atomic(path: Path, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2) + "\n")


def _write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


@dataclass
class _Plan:
    ids: list[str]
    paths: list[str]
    chunk_size: int
    batch_size: int

    @property
    def n_chunks(self) -> int:
        return (len(self.paths) + self.chunk_size - 1) // self.chunk_size

    def chunk(self, c: int) -> list[str]:
        return self.paths[c * self.chunk_size : (c + 1) * self.chunk_size]


@torch.no_grad()
def _encode_chunk(
    model: Any,
    heads: HashHeads | None,
    loader: Any,
    paths: Sequence[str],
    batch_size: int,
    device: torch.device,
    references: dict[str, HammingIndex],
    ppsr_k: int,
) -> dict[str, np.ndarray]:
    parts: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(paths), batch_size):
        batch = torch.stack([loader.normalize(loader.uint8(p)) for p in paths[start : start + batch_size]])  # [b, 3, S, S]
        parts.append({k: v.float().cpu() for k, v in model.embed_images(batch.to(device)).items()})
    embeddings = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}  # [n, ...]
    arrays = {f"emb_{k}": v.numpy().astype(np.float16) for k, v in embeddings.items()}
    if heads is None:
        return arrays
    codes = heads.pack("image", embeddings["global"])  # [n, bits / 8]
    arrays["codes"] = codes
    for name, reference in references.items():
        arrays[f"hub_{name}"] = reference_hubness(codes, reference, ppsr_k)  # [n]
    return arrays


def build_index(
    model: Any,
    heads: HashHeads | None,
    image_paths: Sequence[str],
    out: str | Path,
    *,
    ids: Sequence[str] | None = None,
    references: dict[str, np.ndarray] | None = None,
    loader: Any = None,
    chunk_size: int = 1024,
    batch_size: int = 64,
    ppsr_k: int = 10,
    device: torch.device | str = "cpu",
    model_info: dict[str, Any] | None = None,
    force: bool = False,
    progress: bool = True,
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Encode ``image_paths`` into a gallery index at ``out`` (resuming a partial build).

    Args:
        model: a retrieval model (``embed_images`` -> dict with ``global``), eval mode.
        heads: the trained hash heads (their image head makes the codes); ``None`` for a
            model without them: the index then holds the embeddings only (no codes, no PPSR).
        image_paths: gallery images; ``ids`` defaults to the paths.
        references: packed codes of the PPSR reference query sets, e.g.
            ``{"text": training caption codes, "image": training image codes}``; each gives
            a ``hub_<name>.npy`` gallery term (default: ``heads.reference_codes``). A query
            type without a reference set is searched without PPSR.
        loader: ``ImageLoader`` (default: the model's preprocessing).
        chunk_size: images per resumable unit; batch_size: images per forward pass.
        model_info: recorded in ``index.json`` and in the fingerprint (e.g. variant,
            checkpoint path and its sha256).
        force: discard an existing index or partial build at ``out``.
        on_chunk: called with the chunk number after each chunk is durably recorded
            (a test hook: raising from it simulates an interruption).

    Returns:
        The index directory.
    """
    out = Path(out)
    paths = [str(p) for p in image_paths]
    ids = [str(i) for i in (ids if ids is not None else paths)]
    if not paths:
        raise DataError("no gallery images to index")
    if len(ids) != len(paths) or len(set(ids)) != len(ids):
        raise DataError("gallery ids must be unique and one per image")
    if chunk_size < 1 or batch_size < 1:
        raise ValueError("chunk_size and batch_size must be >= 1")
    device = torch.device(device)
    references = {} if heads is None else dict(heads.reference_codes if references is None else references)
    loader = loader or ImageLoader.for_model(model, cache=False)
    plan = _Plan(ids, paths, int(chunk_size), int(batch_size))
    fingerprint = {
        "format": INDEX_FORMAT,
        "items_sha256": hashlib.sha256("\n".join(f"{i}\t{p}" for i, p in zip(ids, paths)).encode()).hexdigest(),
        "n_items": len(paths),
        "chunk_size": plan.chunk_size,
        "batch_size": plan.batch_size,
        "ppsr_k": int(ppsr_k),
        "heads_sha256": None if heads is None else _sha256_state(heads),
        "references": {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for k, v in sorted(references.items())},
        "model": model_info or {},
    }
    build = out / BUILD_DIR
    state_file = build / "build.json"
    if (out / INDEX_FILE).exists() and not build.exists():
        if not force:
            raise DataError(f"index {str(out)!r} already exists; pass --force to rebuild it")
        _remove_index_files(out)
    if build.exists():
        state = json.loads(state_file.read_text()) if state_file.is_file() else None
        if force or state is None or state.get("fingerprint") != fingerprint:
            if not force and state is not None:
                raise DataError(
                    f"{str(build)!r} holds a partial build with different inputs (model, heads, images or "
                    "chunking); pass --force to discard it"
                )
            shutil.rmtree(build)
    build.mkdir(parents=True, exist_ok=True)
    if not state_file.is_file():
        _write_json_atomic(state_file, {"fingerprint": fingerprint, "done": []})
    state = json.loads(state_file.read_text())
    done = set(state["done"])
    start_time = time.perf_counter()
    reference_indices = {name: HammingIndex(codes) for name, codes in references.items()}
    todo = [c for c in range(plan.n_chunks) if c not in done or not (build / f"chunk_{c:05d}.npz").is_file()]
    bar = tqdm(total=len(paths), desc=f"index {out.name}", unit="img", disable=not progress)
    bar.update(len(paths) - sum(len(plan.chunk(c)) for c in todo))
    model.eval()
    if heads is not None:
        heads.eval()
    for c in todo:
        arrays = _encode_chunk(model, heads, loader, plan.chunk(c), plan.batch_size, device, reference_indices, int(ppsr_k))
        _write_npz_atomic(build / f"chunk_{c:05d}.npz", arrays)
        done.add(c)
        _write_json_atomic(state_file, {"fingerprint": fingerprint, "done": sorted(done)})
        bar.update(len(plan.chunk(c)))
        if on_chunk is not None:
            on_chunk(c)
    bar.close()
    _assemble(out, build, plan, heads, references, fingerprint, int(ppsr_k), time.perf_counter() - start_time)
    return out


def _remove_index_files(out: Path) -> None:
    manifest = json.loads((out / INDEX_FILE).read_text())
    for name in manifest.get("files", []):
        (out / name).unlink(missing_ok=True)
    (out / INDEX_FILE).unlink()


def _assemble(
    out: Path, build: Path, plan: _Plan, heads: HashHeads | None, references: dict[str, np.ndarray],
    fingerprint: dict[str, Any], ppsr_k: int, seconds: float,
) -> None:
    """Stream the chunk files into memory-mapped arrays, then write the manifest last."""
    import pandas as pd

    n = len(plan.paths)
    with np.load(build / "chunk_00000.npz") as first:
        layout = {name: (first[name].dtype, first[name].shape[1:]) for name in first.files}
    outputs = {
        name: np.lib.format.open_memmap(out / f"{name}.npy", mode="w+", dtype=dtype, shape=(n, *shape))
        for name, (dtype, shape) in layout.items()
    }
    for c in range(plan.n_chunks):
        lo = c * plan.chunk_size
        with np.load(build / f"chunk_{c:05d}.npz") as chunk:
            for name, array in outputs.items():
                part = chunk[name]
                array[lo : lo + part.shape[0]] = part
    for array in outputs.values():
        array.flush()
    del outputs
    pd.DataFrame({"id": plan.ids, "path": plan.paths}).to_parquet(out / "items.parquet", index=False)
    files = [f"{name}.npy" for name in layout] + ["items.parquet"]
    if heads is not None:
        saved = HashHeads(**heads.config)
        saved.load_state_dict(heads.state_dict())
        saved.reference_codes = dict(references)
        save_hash_heads(out / HASH_HEADS_FILE, saved)
        files.append(HASH_HEADS_FILE)
    manifest = {
        "format": INDEX_FORMAT,
        "n_items": n,
        "bits": None if heads is None else heads.bits,
        "ppsr_k": ppsr_k,
        "embeddings": {
            name[len("emb_"):]: {"file": f"{name}.npy", "shape": [n, *map(int, shape)], "dtype": str(dtype)}
            for name, (dtype, shape) in layout.items() if name.startswith("emb_")
        },
        "codes": "codes.npy" if "codes" in layout else None,
        "hubness": {name[len("hub_"):]: f"{name}.npy" for name in layout if name.startswith("hub_")},
        "items": "items.parquet",
        "hash_heads": None if heads is None else HASH_HEADS_FILE,
        "model": fingerprint["model"],
        "chunk_size": plan.chunk_size,
        "batch_size": plan.batch_size,
        "build_seconds": seconds,
        "files": files,
        "fingerprint": fingerprint,
    }
    _write_json_atomic(out / INDEX_FILE, manifest)
    shutil.rmtree(build)


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
