"""The register step: a variant's trained checkpoint becomes a registered MLflow model version.

The model is logged as an MLflow logged model of the variant's training run (weights,
config, the rsitr code and, when ``models/<variant>/hash_heads.pt`` exists and was trained
on this checkpoint, the hash heads for coarse-to-fine search; ``rsitr.tracking.pyfunc_model``),
then registered from
it as ``<model_prefix>-<variant>`` with alias ``challenger``; ``rsitr promote`` moves
``champion`` past the gate (``rsitr.tracking.registry.promote``).
"""

from __future__ import annotations

from pathlib import Path

from rsitr.app.core.locks import variant_lock
from rsitr.app.core.paths import ProjectPaths
from rsitr.app.core.runs import variant_run_id
from rsitr.app.core.runs import published_checkpoint
from rsitr.retrieval.hash_head import load_hash_heads
from rsitr.retrieval.gallery_index import sha256_file
from rsitr.config import RsitrParams
from rsitr.data.manifest import read_manifest
from rsitr.models.trained import load_trained_model
from rsitr.tracking.registry import Registration, register_model


def input_example(params: RsitrParams) -> tuple[str, str]:
    """A caption and an image of the test split (the model's input example)."""
    manifest = read_manifest(ProjectPaths.of(params).manifest)
    tests = manifest[manifest["split"] == "test"]
    row = (tests if len(tests) else manifest).iloc[0]
    return str(row["caption"]), str(row["image_path"])


def register_variant(params: RsitrParams, variant: str, *, run_id: str | None = None) -> Registration:
    """Register the variant's run (default: the one in ``models/<variant>/run.json``)."""
    v = params.variant(variant)
    with variant_lock(params, variant, "register"):
        run_id = run_id or variant_run_id(params, variant)
        checkpoint = published_checkpoint(params, variant)
        text, image = input_example(params)
        model = load_trained_model(params, v, checkpoint)
        heads = matching_hash_heads(params, variant, checkpoint)
        return register_model(params, variant, run_id, model=model, example_text=text, example_image=image,
                              hash_heads=None if heads is None else str(heads))


def matching_hash_heads(params: RsitrParams, variant: str, checkpoint: Path) -> Path | None:
    """``models/<variant>/hash_heads.pt`` when it exists and was trained on ``checkpoint``, else None."""
    path = ProjectPaths.of(params).hash_heads(variant)
    if not path.is_file():
        return None
    _, meta = load_hash_heads(path)
    return path if meta.get("checkpoint_sha256") in (None, sha256_file(checkpoint)) else None
