"""Building a gallery index (layout: ``rsitr.retrieval.gallery_index``), resumably.

``build_index`` encodes a folder of images once with a ``GalleryEncoder`` (the model, its
hash heads, the image preprocessing and the device) and writes the index directory.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rsitr.atomic import write_bytes, write_text
from rsitr.config.schema import CoarseToFineParams
from rsitr.data.images import ImageLoader
from rsitr.errors import DataError
from rsitr.retrieval.binary_codes import pack_codes
from rsitr.retrieval.gallery_index import BUILD_DIR, INDEX_FILE, INDEX_FORMAT
from rsitr.retrieval.hamming_search import HammingIndex, reference_hubness
from rsitr.retrieval.hash_head import HASH_HEADS_FILE, HashHeads, save_hash_heads

__all__ = [
    "GalleryEncoder",
    "IMAGE_EXTENSIONS",
    "IndexBuildOptions",
    "build_index",
    "list_images",
]

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


# ----------------------------------------------------------------------------- options and encoder


@dataclass(frozen=True)
class IndexBuildOptions:
    """How an index is built: chunking (the resumable unit), batching, PPSR k, overwrite, progress bar."""

    chunk_size: int = 1024  # images per resumable unit
    batch_size: int = 64  # images per forward pass
    ppsr_k: int = CoarseToFineParams.ppsr_k  # PPSR neighbourhood of the hub_<name>.npy gallery terms
    force: bool = False  # discard an existing index or partial build at ``out``
    progress: bool = True


@dataclass(frozen=True)
class GalleryEncoder:
    """What turns images into index rows.

    ``model``: a retrieval model (``embed_images`` -> dict with ``global``). ``heads``: the
    trained hash heads (their image head makes the codes); ``None`` for a model without
    them: the index then holds the embeddings only (no codes, no PPSR), or, when the
    model's embeddings carry its own ``"hash"`` codes (cfitr), their signs as the codes
    (no PPSR reference sets). ``loader``: an
    ``ImageLoader`` (default: the model's preprocessing).
    """

    model: Any
    heads: HashHeads | None = None
    loader: Any = None
    device: torch.device | str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", torch.device(self.device))
        if self.loader is None:
            object.__setattr__(self, "loader", ImageLoader.for_model(self.model, cache=False))

    @torch.no_grad()
    def encode(
        self, paths: Sequence[str], batch_size: int, references: dict[str, HammingIndex], ppsr_k: int
    ) -> dict[str, np.ndarray]:
        """The arrays of one chunk: ``emb_<key>`` float16 ``[n, ...]``, ``codes`` ``[n, bits / 8]``, ``hub_<name>`` ``[n]``."""
        loader = self.loader
        parts: list[dict[str, torch.Tensor]] = []
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([loader.normalize(loader.uint8(p)) for p in paths[start : start + batch_size]])  # [b, 3, S, S]
            parts.append({k: v.float().cpu() for k, v in self.model.embed_images(batch.to(self.device)).items()})
        embeddings = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}  # [n, ...]
        arrays = {f"emb_{k}": v.numpy().astype(np.float16) for k, v in embeddings.items()}
        if self.heads is None:
            if "hash" in embeddings:  # the model's own hash codes (heads trained with it, cfitr): no PPSR references
                arrays["codes"] = pack_codes(embeddings["hash"])  # [n, bits / 8]
            return arrays
        codes = self.heads.pack("image", embeddings["global"])  # [n, bits / 8]
        arrays["codes"] = codes
        for name, reference in references.items():
            arrays[f"hub_{name}"] = reference_hubness(codes, reference, ppsr_k)  # [n]
        return arrays


# ----------------------------------------------------------------------------- building


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


@dataclass
class _Build:
    """One build in progress: where it goes, what it encodes, and what it depends on."""

    out: Path
    plan: _Plan
    references: dict[str, np.ndarray]
    fingerprint: dict[str, Any]
    ppsr_k: int

    @property
    def folder(self) -> Path:
        return self.out / BUILD_DIR

    @property
    def state_file(self) -> Path:
        return self.folder / "build.json"

    def chunk_file(self, c: int) -> Path:
        return self.folder / f"chunk_{c:05d}.npz"


def build_index(
    encoder: GalleryEncoder,
    image_paths: Sequence[str],
    out: str | Path,
    *,
    ids: Sequence[str] | None = None,
    references: dict[str, np.ndarray] | None = None,
    model_info: dict[str, Any] | None = None,
    options: IndexBuildOptions = IndexBuildOptions(),
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Encode ``image_paths`` into a gallery index at ``out`` (resuming a partial build).

    Args:
        encoder: the model, hash heads, preprocessing and device (``GalleryEncoder``).
        image_paths: gallery images; ``ids`` defaults to the paths.
        references: packed codes of the PPSR reference query sets, e.g.
            ``{"text": training caption codes, "image": training image codes}``; each gives
            a ``hub_<name>.npy`` gallery term (default: ``heads.reference_codes``). A query
            type without a reference set is searched without PPSR.
        model_info: recorded in ``index.json`` and in the fingerprint (e.g. variant,
            checkpoint path and its sha256).
        options: chunking, batching, PPSR k, ``force`` and the progress bar.
        on_chunk: called with the chunk number after each chunk is durably recorded
            (a test hook: raising from it simulates an interruption).

    Returns:
        The index directory.
    """
    plan = _plan(image_paths, ids, options)
    heads = encoder.heads
    references = {} if heads is None else dict(heads.reference_codes if references is None else references)
    build = _Build(Path(out), plan, references, _fingerprint(plan, heads, references, options.ppsr_k, model_info),
                   int(options.ppsr_k))
    done = _open_build(build, options.force)
    start_time = time.perf_counter()
    _encode_missing_chunks(encoder, build, done, options.progress, on_chunk)
    _assemble(build, heads, time.perf_counter() - start_time)
    return build.out


def _plan(image_paths: Sequence[str], ids: Sequence[str] | None, options: IndexBuildOptions) -> _Plan:
    """The checked item list, cut into chunks."""
    paths = [str(p) for p in image_paths]
    ids = [str(i) for i in (ids if ids is not None else paths)]
    if not paths:
        raise DataError("no gallery images to index")
    if len(ids) != len(paths) or len(set(ids)) != len(ids):
        raise DataError("gallery ids must be unique and one per image")
    if options.chunk_size < 1 or options.batch_size < 1:
        raise ValueError("chunk_size and batch_size must be >= 1")
    return _Plan(ids, paths, int(options.chunk_size), int(options.batch_size))


def _fingerprint(
    plan: _Plan, heads: HashHeads | None, references: dict[str, np.ndarray], ppsr_k: int,
    model_info: dict[str, Any] | None,
) -> dict[str, Any]:
    """Everything the arrays depend on (a partial build with another fingerprint is not resumed)."""
    return {
        "format": INDEX_FORMAT,
        "items_sha256": hashlib.sha256("\n".join(f"{i}\t{p}" for i, p in zip(plan.ids, plan.paths)).encode()).hexdigest(),
        "n_items": len(plan.paths),
        "chunk_size": plan.chunk_size,
        "batch_size": plan.batch_size,
        "ppsr_k": int(ppsr_k),
        "heads_sha256": None if heads is None else _sha256_state(heads),
        "references": {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for k, v in sorted(references.items())},
        "model": model_info or {},
    }


def _open_build(build: _Build, force: bool) -> set[int]:
    """Refuse or clear what is at ``out``, create ``_build/build.json``; the chunks already done."""
    out, folder, state_file = build.out, build.folder, build.state_file
    if (out / INDEX_FILE).exists() and not folder.exists():
        if not force:
            raise DataError(f"index {str(out)!r} already exists; pass --force to rebuild it")
        _remove_index_files(out)
    if folder.exists():
        state = json.loads(state_file.read_text()) if state_file.is_file() else None
        if force or state is None or state.get("fingerprint") != build.fingerprint:
            if not force and state is not None:
                raise DataError(
                    f"{str(folder)!r} holds a partial build with different inputs (model, heads, images or "
                    "chunking); pass --force to discard it"
                )
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not state_file.is_file():
        _write_json_atomic(state_file, {"fingerprint": build.fingerprint, "done": []})
    return set(json.loads(state_file.read_text())["done"])


def _encode_missing_chunks(
    encoder: GalleryEncoder, build: _Build, done: set[int], progress: bool, on_chunk: Callable[[int], None] | None
) -> None:
    """Encode every chunk not yet recorded, recording each one durably as it finishes."""
    plan = build.plan
    reference_indices = {name: HammingIndex(codes) for name, codes in build.references.items()}
    todo = [c for c in range(plan.n_chunks) if c not in done or not build.chunk_file(c).is_file()]
    bar = tqdm(total=len(plan.paths), desc=f"index {build.out.name}", unit="img", disable=not progress)
    bar.update(len(plan.paths) - sum(len(plan.chunk(c)) for c in todo))
    encoder.model.eval()
    if encoder.heads is not None:
        encoder.heads.eval()
    for c in todo:
        arrays = encoder.encode(plan.chunk(c), plan.batch_size, reference_indices, build.ppsr_k)
        _write_npz_atomic(build.chunk_file(c), arrays)
        done.add(c)
        _write_json_atomic(build.state_file, {"fingerprint": build.fingerprint, "done": sorted(done)})
        bar.update(len(plan.chunk(c)))
        if on_chunk is not None:
            on_chunk(c)
    bar.close()


def _remove_index_files(out: Path) -> None:
    manifest = json.loads((out / INDEX_FILE).read_text())
    for name in manifest.get("files", []):
        (out / name).unlink(missing_ok=True)
    (out / INDEX_FILE).unlink()


def _assemble(build: _Build, heads: HashHeads | None, seconds: float) -> None:
    """Stream the chunk files into memory-mapped arrays, then write the manifest last."""
    import pandas as pd

    out, plan = build.out, build.plan
    layout = _stream_chunks(build)
    pd.DataFrame({"id": plan.ids, "path": plan.paths}).to_parquet(out / "items.parquet", index=False)
    files = [f"{name}.npy" for name in layout] + ["items.parquet"]
    if heads is not None:
        saved = HashHeads(**heads.config)
        saved.load_state_dict(heads.state_dict())
        saved.reference_codes = dict(build.references)
        save_hash_heads(out / HASH_HEADS_FILE, saved)
        files.append(HASH_HEADS_FILE)
    _write_json_atomic(out / INDEX_FILE, _manifest(build, heads, layout, files, seconds))
    shutil.rmtree(build.folder)


def _stream_chunks(build: _Build) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Copy every chunk into ``<out>/<name>.npy`` memmaps; returns ``{name: (dtype, row shape)}``."""
    plan, n = build.plan, len(build.plan.paths)
    with np.load(build.chunk_file(0)) as first:
        layout = {name: (first[name].dtype, first[name].shape[1:]) for name in first.files}
    outputs = {
        name: np.lib.format.open_memmap(build.out / f"{name}.npy", mode="w+", dtype=dtype, shape=(n, *shape))
        for name, (dtype, shape) in layout.items()
    }
    for c in range(plan.n_chunks):
        lo = c * plan.chunk_size
        with np.load(build.chunk_file(c)) as chunk:
            for name, array in outputs.items():
                part = chunk[name]
                array[lo : lo + part.shape[0]] = part
    for array in outputs.values():
        array.flush()
    del outputs
    return layout


def _manifest(
    build: _Build, heads: HashHeads | None, layout: dict[str, tuple[np.dtype, tuple[int, ...]]], files: list[str],
    seconds: float,
) -> dict[str, Any]:
    """The contents of ``index.json``."""
    n, plan = len(build.plan.paths), build.plan
    return {
        "format": INDEX_FORMAT,
        "n_items": n,
        "bits": heads.bits if heads is not None else (8 * int(layout["codes"][1][0]) if "codes" in layout else None),
        "ppsr_k": build.ppsr_k,
        "embeddings": {
            name[len("emb_"):]: {"file": f"{name}.npy", "shape": [n, *map(int, shape)], "dtype": str(dtype)}
            for name, (dtype, shape) in layout.items() if name.startswith("emb_")
        },
        "codes": "codes.npy" if "codes" in layout else None,
        "hubness": {name[len("hub_"):]: f"{name}.npy" for name in layout if name.startswith("hub_")},
        "items": "items.parquet",
        "hash_heads": None if heads is None else HASH_HEADS_FILE,
        "model": build.fingerprint["model"],
        "chunk_size": plan.chunk_size,
        "batch_size": plan.batch_size,
        "build_seconds": seconds,
        "files": files,
        "fingerprint": build.fingerprint,
    }
