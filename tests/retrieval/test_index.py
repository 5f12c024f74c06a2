"""Gallery index build: layout, PPSR gallery terms, and resuming after an interruption."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rsitr.errors import DataError, ModelError
from rsitr.retrieval.hash_head import HashHeads
from rsitr.retrieval.gallery_build import GalleryEncoder, IndexBuildOptions, build_index, list_images
from rsitr.retrieval.gallery_index import GalleryIndex
from rsitr.retrieval.hamming_search import hamming_similarity
from rsitr.retrieval.binary_codes import hamming_distance

from test_coarse_to_fine import StubModel, make_cells, stub_loader


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gallery")
    split = make_cells(root / "images", 1, seed=3)  # 48 images
    torch.manual_seed(0)
    heads = HashHeads(in_dim=48, hidden=32, bits=32).eval()  # untrained heads make valid codes too
    rng = np.random.default_rng(0)
    heads.reference_codes = {
        "text": rng.integers(0, 256, (30, 4), dtype=np.uint8),
        "image": rng.integers(0, 256, (20, 4), dtype=np.uint8),
    }
    ids, paths = list_images(root / "images")
    yield {"root": root, "ids": ids, "paths": paths, "heads": heads, "split": split}
    torch.set_num_threads(threads)


class Interrupt(Exception):
    pass


def _build(gallery, out, **kwargs):
    model = kwargs.pop("model", None) or StubModel()
    options = IndexBuildOptions(chunk_size=10, batch_size=4, ppsr_k=3, force=kwargs.pop("force", False), progress=False)
    return build_index(
        GalleryEncoder(model, gallery["heads"], stub_loader()), gallery["paths"], out, ids=gallery["ids"],
        model_info={"variant": "stub"}, options=options, **kwargs,
    )


def _arrays(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npy"))}


def test_list_images_is_recursive_and_sorted(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ["b/2.png", "a.JPG", "b/1.tif", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    ids, paths = list_images(tmp_path)
    assert ids == ["a.JPG", "b/1.tif", "b/2.png"]
    assert paths[0] == str((tmp_path / "a.JPG").resolve())
    with pytest.raises(DataError):
        list_images(tmp_path / "b" / "missing")


def test_index_layout_and_contents(gallery, tmp_path):
    out = _build(gallery, tmp_path / "index")
    index = GalleryIndex.load(out)
    assert len(index) == 48 and index.ids == gallery["ids"] and index.bits == 32
    assert not (out / "_build").exists()
    assert index.codes.dtype == np.uint8 and index.codes.shape == (48, 4)
    assert set(index.embeddings) == {"global", "tokens"}  # everything embed_images returns
    assert index.embeddings["global"].dtype == np.float16 and index.embeddings["tokens"].shape == (48, 16, 3)
    # the codes and embeddings are the model's and the heads'
    model, loader = StubModel(), stub_loader()
    pixels = torch.stack([loader.normalize(loader.uint8(p)) for p in gallery["paths"]])
    embs = model.embed_images(pixels)
    np.testing.assert_array_equal(index.embeddings["global"], embs["global"].numpy().astype(np.float16))
    np.testing.assert_array_equal(index.codes, gallery["heads"].pack("image", embs["global"]))
    # PPSR gallery term: mean of the top-3 Hamming similarities to each reference set
    for name, reference in gallery["heads"].reference_codes.items():
        sims = np.sort(hamming_similarity(hamming_distance(index.codes, reference), 32), axis=1)[:, ::-1]
        np.testing.assert_allclose(index.hubness[name], sims[:, :3].mean(axis=1), atol=1e-6)
    heads, _ = index.load_heads()
    np.testing.assert_array_equal(heads.reference_codes["text"], gallery["heads"].reference_codes["text"])
    manifest = json.loads((out / "index.json").read_text())
    assert manifest["model"] == {"variant": "stub"} and manifest["n_items"] == 48


def test_interrupted_build_resumes_to_the_same_bytes(gallery, tmp_path):
    reference = _build(gallery, tmp_path / "straight")
    out = tmp_path / "resumed"

    def stop_after_two(chunk: int) -> None:
        if chunk == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        _build(gallery, out, on_chunk=stop_after_two)
    state = json.loads((out / "_build" / "build.json").read_text())
    assert state["done"] == [0, 1] and not (out / "index.json").exists()
    with pytest.raises(DataError, match="partial build"):
        GalleryIndex.load(out)
    model = StubModel()
    _build(gallery, out, model=model)
    assert model.embed_calls == 3 + 3 + 2  # chunks 2-4 (10, 10, 8 images) in batches of 4; 0, 1 not redone
    assert _arrays(out) == _arrays(reference)
    assert len(_arrays(out)) == 5  # codes, emb_global, emb_tokens, hub_image, hub_text
    a, b = GalleryIndex.load(out), GalleryIndex.load(reference)
    assert a.ids == b.ids and a.paths == b.paths


def test_existing_index_and_mismatched_partial_build_are_refused(gallery, tmp_path):
    out = _build(gallery, tmp_path / "index")
    with pytest.raises(DataError, match="already exists"):
        _build(gallery, out)
    _build(gallery, out, force=True)  # rebuilds
    partial = tmp_path / "partial"
    with pytest.raises(Interrupt):
        _build(gallery, partial, on_chunk=lambda c: (_ for _ in ()).throw(Interrupt()))
    with pytest.raises(DataError, match="different inputs"):
        build_index(
            GalleryEncoder(StubModel(), gallery["heads"], stub_loader()), gallery["paths"], partial, ids=gallery["ids"],
            model_info={"variant": "stub"}, options=IndexBuildOptions(chunk_size=12, batch_size=4, ppsr_k=3, progress=False),
        )


def test_a_model_reference_resolves_to_a_registry_version_or_a_published_checkpoint(tmp_path, monkeypatch):
    from rsitr.app.serving.gallery import resolve_model
    from rsitr.config import load_params
    from rsitr.errors import ConfigError, TrackingError

    from toy_data import migrated_tracking_db

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml",
                         [f"paths.models={tmp_path}", f"tracking.uri={migrated_tracking_db(tmp_path / 'mlflow.db')}"])
    with pytest.raises(TrackingError, match=r"models:/rsitr-finetune@champion does not resolve"):
        resolve_model(params, "models:/rsitr-finetune@champion")
    with pytest.raises(ConfigError, match="is not models:/<name>@<alias>"):
        resolve_model(params, "models:/rsitr-finetune")
    with pytest.raises(ModelError, match=r"finetune/best.pt not found; train the variant first"):
        resolve_model(params, "finetune")
    with pytest.raises(ConfigError, match="unknown variant 'nosuch'"):
        resolve_model(params, "nosuch")
