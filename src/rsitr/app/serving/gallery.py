"""Gallery indexes and search over them, for a trained variant or a registered model version.

``build_gallery_index`` resolves a model reference and encodes a folder of images (or the
images of a dataset split) into a resumable index (``rsitr.retrieval.gallery_build``). References:

* ``models:/<name>@<alias>`` or ``models:/<name>/<version>``: a registered version, downloaded
  from the registry (weights, config, hash heads when the variant had them);
* an MLflow run id that has a registered version;
* a variant name, or its published checkpoint ``models/<variant>/best.pt``.

The index records the model it was built with (registered name, version, alias, model id, run
id; or variant, run id and checkpoint sha256), never an absolute checkpoint path. When the
model has hash heads the index also holds CFITR codes; the float coarse index of
``serve.coarse`` (HNSW by default) is built beside it (``<index>/coarse/``).
``load_searcher`` loads the model an index names once into a ``GallerySearcher``
(``rsitr.retrieval.searcher``); ``rsitr search`` and ``rsitr serve`` use it.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rsitr.app.core.paths import ProjectPaths
from rsitr.app.steps.registry import matching_hash_heads
from rsitr.app.core.runs import published_checkpoint, read_run_record
from rsitr.config import RsitrParams
from rsitr.data.images import verify_images
from rsitr.data.manifest import read_manifest
from rsitr.errors import ConfigError, DataError, ModelError
from rsitr.models import resolve_device
from rsitr.models.trained import load_trained_model
from rsitr.retrieval.hash_head import load_hash_heads
from rsitr.retrieval.gallery_build import GalleryEncoder, IndexBuildOptions, build_index, list_images
from rsitr.retrieval.gallery_index import BUILD_DIR, INDEX_FILE, GalleryIndex, sha256_file
from rsitr.retrieval.searcher import FLOAT_COARSE, GallerySearcher, SearchOptions, build_float_coarse, check_fine_stage
from rsitr.tracking.pyfunc_model import load_model_bundle
from rsitr.tracking.registry import (
    ModelVersionRef,
    download_model_version,
    resolve_model_version,
    version_of_run,
)

logger = logging.getLogger(__name__)

MAX_TOP_K = 1000
COARSE_DIR = "coarse"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class GalleryBuild:
    """How ``rsitr index build`` builds (``None``: the model's own value)."""

    chunk_size: int = 1024  # images per resumable unit
    batch_size: int | None = None  # images per forward pass; None: the variant's eval.batch_size
    device: str | None = None  # None: the variant's train.device
    force: bool = False  # discard an existing index or partial build
    progress: bool = True


@dataclass(frozen=True)
class SearchChoice:
    """Overrides of ``params.serve`` for one searcher (``None``: the params' value).

    ``fine="none"`` ranks by the coarse score alone; ``ppsr=False`` switches PPSR off
    (it is on only when ``c2f.ppsr`` is too).
    """

    coarse: str | None = None
    fine: str | None = None
    candidates: int | None = None
    ppsr: bool = True
    device: str | None = None


@dataclass
class ResolvedModel:
    """A model ready to encode: the network, its hash heads (or None) and what the index records."""

    record: dict[str, Any]
    model: Any
    heads: Any
    batch_size: int
    ppsr_k: int
    variant: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _variant_of_path(params: RsitrParams, ref: str) -> str | None:
    path = Path(ref)
    if path.suffix == ".pt" and path.is_file():
        variant = path.resolve().parent.name
        if variant in params.variants and path.resolve() == ProjectPaths.of(params).best_checkpoint(variant).resolve():
            return variant
        raise ModelError(f"checkpoint {ref!r} is not a published models/<variant>/best.pt of these params; pass the "
                         f"variant name (one of: {', '.join(params.variants)}) or a models:/ URI")
    return None


def load_registered(params: RsitrParams, ref: ModelVersionRef) -> ResolvedModel:
    """Download a registered version and rebuild its model (and hash heads) in memory."""
    with tempfile.TemporaryDirectory(prefix="rsitr-model-") as tmp:
        bundle = load_model_bundle(download_model_version(params, ref, tmp))
    v = bundle.params.variant(bundle.variant)
    return ResolvedModel(record=ref.record() | {"variant": bundle.variant, "arch": bundle.params.model.arch,
                                                "hash_heads": bundle.heads is not None},
                         model=bundle.model, heads=bundle.heads, batch_size=v.eval.batch_size,
                         ppsr_k=bundle.params.c2f.ppsr_k, variant=bundle.variant)


def load_variant(params: RsitrParams, variant: str, expected_sha256: str | None = None) -> ResolvedModel:
    """The variant's published checkpoint (and matching hash heads) from this project's ``models/``."""
    checkpoint = published_checkpoint(params, variant)
    checkpoint_sha = sha256_file(checkpoint)
    if expected_sha256 is not None and expected_sha256 != checkpoint_sha:
        raise ModelError(f"models/{variant}/best.pt is not the checkpoint this index was built with (retrained "
                         f"since); rebuild the index: rsitr index build --model {variant} ... --force")
    heads_file = matching_hash_heads(params, variant, checkpoint)
    heads = load_hash_heads(heads_file)[0] if heads_file is not None else None
    record = read_run_record(params, variant)
    return ResolvedModel(
        record={"uri": variant, "variant": variant, "arch": params.model.arch, "checkpoint_sha256": checkpoint_sha,
                "run_id": None if record is None else record.run_id, "hash_heads": heads is not None},
        model=load_trained_model(params, variant, checkpoint), heads=heads,
        batch_size=params.variant(variant).eval.batch_size, ppsr_k=params.c2f.ppsr_k, variant=variant)


def resolve_model(params: RsitrParams, ref: str) -> ResolvedModel:
    """A model reference (see the module doc) -> the model in memory."""
    if ref.startswith("models:/"):
        return load_registered(params, resolve_model_version(params, ref))
    variant = _variant_of_path(params, ref)
    if variant is None and ref not in params.variants and RUN_ID.match(ref):
        version = version_of_run(params, ref)
        if version is None:
            raise ModelError(f"MLflow run {ref} has no registered model version; register it "
                             "(`rsitr register --variant V --run-id ...`) or pass a variant name")
        return load_registered(params, version)
    variant = variant or ref
    params.variant(variant)  # unknown names fail with the list of valid ones
    return load_variant(params, variant)


def choose_device(params: RsitrParams, variant: str | None, requested: str | None) -> torch.device:
    if requested:
        return resolve_device(requested)
    if variant is not None and variant in params.variants:
        return resolve_device(params.variant(variant).train.device)
    return resolve_device("auto")


def coarse_options(params: RsitrParams, kind: str) -> dict[str, Any]:
    s = params.serve
    if kind == "hnsw":
        return {"m": s.hnsw_m, "ef_construction": s.hnsw_ef_construction, "ef_search": s.hnsw_ef_search,
                "threads": s.threads}
    if kind == "ivf":
        return {"nprobe": s.ivf_nprobe, "threads": s.threads}
    return {"threads": s.threads}


def split_images(params: RsitrParams, split: str) -> tuple[list[str], list[str]]:
    """``(ids, paths)`` of the images of a split of the processed manifest (``test`` or ``dataset:test``)."""
    dataset, _, name = split.rpartition(":")
    manifest = read_manifest(ProjectPaths.of(params).manifest)
    rows = manifest[manifest["split"] == name]
    if dataset:
        rows = rows[rows["dataset"] == dataset]
    if rows.empty:
        raise DataError(f"no images in split {split!r}; valid splits: "
                        f"{', '.join(sorted(set(manifest['split'])))} (optionally prefixed by a dataset, e.g. "
                        f"{manifest['dataset'].iloc[0]}:test)")
    rows = rows.drop_duplicates("image_id").sort_values("image_id")
    return rows["image_id"].astype(str).tolist(), [str(Path(p).resolve()) for p in rows["image_path"]]


def build_gallery_index(params: RsitrParams, model: str, images: str | Path | None, out: str | Path, *,
                        split: str | None = None, build: GalleryBuild = GalleryBuild()) -> GalleryIndex:
    """Encode every image under ``images`` (or of ``split``) with ``model`` into the index folder ``out``."""
    out_dir = Path(out)
    if (out_dir / INDEX_FILE).exists() and not (out_dir / BUILD_DIR).exists() and not build.force:
        raise DataError(f"index {str(out)!r} already exists; pass --force to rebuild it")
    if (images is None) == (split is None):
        raise ConfigError("give either --images DIR or --split NAME (not both)")
    listed = list_images(images) if images is not None else split_images(params, split)  # fails fast when empty
    ids, image_paths = readable_images(*listed)
    resolved = resolve_model(params, model)
    torch_device = choose_device(params, resolved.variant, build.device)
    heads = None if resolved.heads is None else resolved.heads.to(torch_device).eval()
    if build.force:
        shutil.rmtree(out_dir / COARSE_DIR, ignore_errors=True)
    options = IndexBuildOptions(chunk_size=build.chunk_size, batch_size=build.batch_size or resolved.batch_size,
                                ppsr_k=resolved.ppsr_k, force=build.force, progress=build.progress)
    encoder = GalleryEncoder(resolved.model.to(torch_device).eval(), heads, device=torch_device)
    built = build_index(encoder, image_paths, out_dir, ids=ids, model_info=resolved.record, options=options)
    index = GalleryIndex.load(built)
    kind = params.serve.coarse
    if kind in FLOAT_COARSE:  # the served coarse stage, built once here rather than at every server start
        coarse_dir = out_dir / COARSE_DIR
        shutil.rmtree(coarse_dir, ignore_errors=True)
        build_float_coarse(kind, index.embeddings["global"], coarse_options(params, kind)).save(coarse_dir)
    return index


def readable_images(ids: list[str], image_paths: list[str]) -> tuple[list[str], list[str]]:
    """Drop images that do not decode (0-byte, truncated, not an image); name them on stderr."""
    problems = verify_images(image_paths, workers=2)
    bad = [(i, problems[p]) for i, p in zip(ids, image_paths) if problems[p]]
    if bad:
        shown = "; ".join(f"{i}: {why}" for i, why in bad[:5])
        logger.warning(f"index build: skipped {len(bad)} unreadable image(s): {shown}" + (" ..." if len(bad) > 5 else ""))
    kept = [(i, p) for i, p in zip(ids, image_paths) if not problems[p]]
    if not kept:
        raise DataError(f"none of the {len(ids)} gallery images can be read; check the images folder")
    return [i for i, _ in kept], [p for _, p in kept]


def check_query(text: str | None, image: str | None, top_k: int, candidates: int | None,
                max_top_k: int = MAX_TOP_K) -> None:
    """One-line errors for queries that cannot mean anything."""
    if (text is None) == (image is None):
        raise ConfigError("give either a text query or --image PATH (not both)")
    if text is not None and not text.strip():
        raise ConfigError("the text query is empty; give a few words, e.g. \"two white storage tanks\"")
    if not 1 <= top_k <= max_top_k:
        raise ConfigError(f"--top-k must be between 1 and {max_top_k}, got {top_k}")
    if candidates is not None and candidates < 1:
        raise ConfigError(f"--candidates must be at least 1, got {candidates}")


def index_model(index: GalleryIndex) -> dict[str, Any]:
    info = index.manifest.get("model") or {}
    if not (info.get("version") or info.get("variant")):
        raise ModelError(f"index {str(index.root)!r} does not name the model it was built with; rebuild it")
    return info


def load_index_model(params: RsitrParams, index: GalleryIndex) -> ResolvedModel:
    """The exact model an index was built with: its registered version, or the variant's same checkpoint."""
    info = index_model(index)
    if info.get("version") and info.get("name"):
        ref = ModelVersionRef(name=info["name"], version=str(info["version"]), alias=info.get("alias"),
                              model_id=info.get("model_id"), run_id=info.get("run_id"), variant=info.get("variant"))
        return load_registered(params, ref)
    return load_variant(params, info["variant"], expected_sha256=info.get("checkpoint_sha256"))


def make_searcher(params: RsitrParams, index: GalleryIndex, resolved: ResolvedModel,
                  choice: SearchChoice = SearchChoice()) -> GallerySearcher:
    kind = choice.coarse or params.serve.coarse
    torch_device = choose_device(params, resolved.variant, choice.device)
    heads = None if resolved.heads is None else resolved.heads.to(torch_device).eval()
    fine = choice.fine or params.serve.fine
    check_fine_stage(fine, resolved.model, f"variant {resolved.variant or resolved.record.get('uri', '?')}")
    options = SearchOptions(coarse=kind, fine=fine,
                            candidates=choice.candidates or params.serve.candidates,
                            coarse_options=coarse_options(params, kind), coarse_dir=index.root / COARSE_DIR,
                            use_ppsr=choice.ppsr and params.c2f.ppsr)
    return GallerySearcher(index, resolved.model.to(torch_device), heads=heads, options=options, device=torch_device)


def load_searcher(params: RsitrParams, index_dir: str | Path, choice: SearchChoice = SearchChoice()) -> GallerySearcher:
    """Load the index and ITS model once; ``choice`` as ``make_searcher``."""
    index = GalleryIndex.load(index_dir)
    return make_searcher(params, index, load_index_model(params, index), choice)


def search_gallery(params: RsitrParams, index_dir: str | Path, *, text: str | None = None,
                   image: str | None = None, top_k: int = 10, choice: SearchChoice = SearchChoice()) -> dict[str, Any]:
    """One query against ``index_dir`` with the model it was built with (``rsitr search``)."""
    check_query(text, image, top_k, choice.candidates)
    searcher = load_searcher(params, index_dir, choice)
    result = searcher.search_text(text, top_k) if text is not None else searcher.search_image(image, top_k, str(image))
    return result | {"items": len(searcher), "model": index_model(searcher.index)}
