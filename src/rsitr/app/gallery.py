"""Gallery indexes and search over them, for a variant trained in this project.

``build_gallery_index`` resolves a model reference (a variant name today: its
``models/<variant>/best.pt`` and ``hash_heads.pt``), checks that the hash heads belong to
that checkpoint, and encodes a folder of images into a resumable index
(``rsitr.retrieval.index``). ``search_gallery`` loads the model the index names and runs
coarse-to-fine search (``rsitr.retrieval.search``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rsitr.app.paths import ProjectPaths
from rsitr.app.runs import published_checkpoint
from rsitr.config import RsitrParams
from rsitr.data.images import verify_images
from rsitr.errors import ConfigError, DataError, ModelError
from rsitr.models import resolve_device
from rsitr.models.trained import load_trained_model
from rsitr.retrieval.hash_head import load_hash_heads
from rsitr.retrieval.index import BUILD_DIR, INDEX_FILE, GalleryIndex, build_index, list_images, sha256_file
from rsitr.retrieval.search import search_index

MAX_TOP_K = 1000


@dataclass(frozen=True)
class ModelRef:
    """Where a retrieval model and its hash heads live on disk."""

    variant: str
    checkpoint: Path
    hash_heads: Path
    uri: str  # what the user passed


def resolve_model_ref(params: RsitrParams, ref: str) -> ModelRef:
    """A variant name -> ``models/<variant>/{best.pt, hash_heads.pt}``."""
    if ref.startswith("models:/"):
        raise ModelError(f"model registry URIs ({ref!r}) are not supported by `index build` yet; pass a variant "
                         f"name (one of: {', '.join(params.variants)})")
    params.variant(ref)  # unknown names fail with the list of valid ones
    paths = ProjectPaths.of(params)
    return ModelRef(variant=ref, checkpoint=published_checkpoint(params, ref), hash_heads=paths.hash_heads(ref), uri=ref)


def choose_device(params: RsitrParams, variant: str | None, requested: str | None) -> torch.device:
    if requested:
        return resolve_device(requested)
    if variant is not None and variant in params.variants:
        return resolve_device(params.variant(variant).train.device)
    return resolve_device("auto")


def build_gallery_index(params: RsitrParams, model: str, images: str | Path, out: str | Path, *,
                        chunk_size: int = 1024, batch_size: int | None = None, device: str | None = None,
                        force: bool = False, progress: bool = True) -> GalleryIndex:
    """Encode every image under ``images`` with ``model`` into the index folder ``out``."""
    out_dir = Path(out)
    if (out_dir / INDEX_FILE).exists() and not (out_dir / BUILD_DIR).exists() and not force:
        raise DataError(f"index {str(out)!r} already exists; pass --force to rebuild it")
    ids, image_paths = readable_images(*list_images(images))  # fails fast on an empty or missing folder
    ref = resolve_model_ref(params, model)
    torch_device = choose_device(params, ref.variant, device)
    net = load_trained_model(params, ref.variant, ref.checkpoint).to(torch_device).eval()
    heads, meta = load_hash_heads(ref.hash_heads)
    checkpoint_sha = sha256_file(ref.checkpoint)
    if meta.get("checkpoint_sha256") not in (None, checkpoint_sha):
        raise ModelError(
            f"hash heads {str(ref.hash_heads)!r} were trained on another checkpoint than {str(ref.checkpoint)!r}; "
            f"re-run `rsitr c2f train --variant {ref.variant}`"
        )
    built = build_index(
        net, heads.to(torch_device).eval(), image_paths, out_dir, ids=ids, chunk_size=chunk_size,
        batch_size=batch_size or params.variant(ref.variant).eval.batch_size, ppsr_k=params.c2f.ppsr_k,
        device=torch_device, force=force, progress=progress,
        model_info={"uri": ref.uri, "variant": ref.variant, "arch": params.model.arch,
                    "checkpoint": str(ref.checkpoint.resolve()), "checkpoint_sha256": checkpoint_sha},
    )
    return GalleryIndex.load(built)


def readable_images(ids: list[str], image_paths: list[str]) -> tuple[list[str], list[str]]:
    """Drop images that do not decode (0-byte, truncated, not an image); name them on stderr."""
    problems = verify_images(image_paths, workers=2)
    bad = [(i, problems[p]) for i, p in zip(ids, image_paths) if problems[p]]
    if bad:
        shown = "; ".join(f"{i}: {why}" for i, why in bad[:5])
        print(f"index build: skipped {len(bad)} unreadable image(s): {shown}" + (" ..." if len(bad) > 5 else ""),
              file=sys.stderr)
    kept = [(i, p) for i, p in zip(ids, image_paths) if not problems[p]]
    if not kept:
        raise DataError(f"none of the {len(ids)} gallery images can be read; check the images folder")
    return [i for i, _ in kept], [p for _, p in kept]


def check_query(text: str | None, image: str | None, top_k: int, candidates: int | None) -> None:
    """One-line errors for queries that cannot mean anything."""
    if (text is None) == (image is None):
        raise ConfigError("give either a text query or --image PATH (not both)")
    if text is not None and not text.strip():
        raise ConfigError("the text query is empty; give a few words, e.g. \"two white storage tanks\"")
    if not 1 <= top_k <= MAX_TOP_K:
        raise ConfigError(f"--top-k must be between 1 and {MAX_TOP_K}, got {top_k}")
    if candidates is not None and candidates < 1:
        raise ConfigError(f"--candidates must be at least 1, got {candidates}")


def search_gallery(params: RsitrParams, index_dir: str | Path, *, text: str | None = None,
                   image: str | None = None, top_k: int = 10, candidates: int | None = None, ppsr: bool = True,
                   coarse_only: bool = False, device: str | None = None) -> dict[str, Any]:
    """Coarse-to-fine search of ``index_dir`` with the model it was built with."""
    check_query(text, image, top_k, candidates)
    index = GalleryIndex.load(index_dir)
    info = index.manifest["model"]
    variant = info.get("variant")
    if not variant:
        raise ModelError(f"index {str(index_dir)!r} does not name the model it was built with")
    torch_device = choose_device(params, variant, device)
    model = load_trained_model(params, variant, Path(info["checkpoint"])).to(torch_device).eval()
    heads, _ = index.load_heads()
    c2f = params.c2f
    return search_index(
        index, model, heads.to(torch_device), text=text, image=image, top_k=top_k,
        candidates=c2f.candidates if candidates is None else candidates, use_ppsr=c2f.ppsr and ppsr, ppsr_k=c2f.ppsr_k,
        coarse_only=c2f.coarse_only or coarse_only, device=torch_device,
    ) | {"items": len(index)}
