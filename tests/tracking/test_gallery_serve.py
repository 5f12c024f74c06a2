"""Served search: an index built from ``models:/...@champion``, the HTTP service, and a promotion going live.

Each test registers its own models (``tracking.model_prefix``) on the shared ``trained_toy`` project.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rsitr.app.serving.gallery import GalleryBuild, build_gallery_index, load_searcher
from rsitr.app.steps.registry import input_example, register_variant
from rsitr.app.core.runs import published_checkpoint, read_run_record
from rsitr.config import load_params
from rsitr.models.trained import load_trained_model
from rsitr.retrieval.gallery_index import GalleryIndex
from rsitr.tracking.registry import promote, register_model

GALLERY = range(200, 240)  # the toy test images; colour = index % 6 (0 red, 1 green, 2 blue, ...)


def _gallery(params, tmp_path: Path) -> Path:
    folder = tmp_path / "gallery"
    folder.mkdir()
    for i in GALLERY:
        (folder / f"{i}.png").write_bytes((Path(params.paths.data) / "img" / f"{i}.png").read_bytes())
    return folder


def _client(service):
    from fastapi.testclient import TestClient

    from rsitr.app.serving.serve import create_app

    return TestClient(create_app(service))


def test_index_from_the_champion_serves_text_and_image_queries(trained_toy: Path, tmp_path: Path, rsitr_cli) -> None:
    from rsitr.app.serving.serve import SearchService

    overrides = ["tracking.model_prefix=gal", "serve.max_upload_mb=0.05"]
    params = load_params(trained_toy, overrides)
    register_variant(params, "finetune")
    assert promote(params, "finetune").promoted
    images = _gallery(params, tmp_path)
    out = tmp_path / "indexes" / "gal-v1"
    code, stdout, err = rsitr_cli("index", "build", "--params", str(trained_toy), *[a for o in overrides for a in
                                  ("--set", o)], "--model", "models:/gal-finetune@champion", "--images", str(images),
                                  "--out", str(out), "--no-progress")
    assert code == 0, err
    record = json.loads((out / "index.json").read_text())["model"]
    assert record["name"] == "gal-finetune" and record["version"] == "1" and record["alias"] == "champion"
    assert record["model_id"].startswith("m-") and record["run_id"] == read_run_record(params, "finetune").run_id
    assert str(tmp_path) not in json.dumps(record) and "checkpoint" not in record  # no paths in the record
    assert (out / "coarse" / "coarse_index.json").is_file()  # HNSW, the served default, built with the index

    service = SearchService(params, out, poll_s=60)
    assert service.follows == "models:/gal-finetune@champion"
    with _client(service) as client:
        health = client.get("/healthz").json()
        assert health["serving"]["version"] == "1" and health["alias_points_to"] == "1" and health["pending"] is None
        answer = client.post("/search/text", json={"query": "a plain red field", "top_k": 5})
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert found["coarse"] == "hnsw" and found["mode"] == "text -> image"
        ids = [r["id"] for r in found["results"]]
        assert len(ids) == 5 and set(ids) <= {f"{i}.png" for i in GALLERY}

        # the served ranking is the model's own exact ranking over the whole gallery (candidates >= gallery)
        model = load_trained_model(params, "finetune", published_checkpoint(params, "finetune"))
        index = GalleryIndex.load(out)
        with torch.no_grad():
            text = model.embed_texts(model.tokenize(["a plain red field"]))
            gallery = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in index.embeddings.items()}
            scores = model.score(gallery, text)[:, 0].numpy()
        expected = [index.ids[i] for i in np.lexsort((np.arange(len(scores)), -scores))[:5]]
        assert ids == expected
        np.testing.assert_allclose([r["score"] for r in found["results"]], np.sort(scores)[::-1][:5], atol=1e-4)

        # image -> image: a gallery image finds itself first
        upload = (images / "207.png").read_bytes()
        answer = client.post("/search/image?top_k=3", files={"image": ("q.png", upload, "image/png")})
        assert answer.status_code == 200, answer.text
        assert answer.json()["mode"] == "image -> image" and answer.json()["results"][0]["id"] == "207.png"

        thumb = client.get("/gallery/207.png?size=64")
        assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (64, 64)
        page = client.get("/", params={"q": "a plain red field", "k": 4}).text
        assert page.count('class="result"') == 4 and "/gallery/" + expected[0] in page

        # bad requests: a 4xx with a message, never a 500
        big = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)).save(big, "PNG")
        for response, status, words in [
            (client.post("/search/text", json={"query": "  ", "top_k": 5}), 400, "query is empty"),
            (client.post("/search/text", json={"query": "red", "top_k": 0}), 400, "top_k must be between 1 and"),
            (client.post("/search/text", json={"query": "red", "top_k": 101}), 400, "top_k must be between 1 and"),
            (client.post("/search/text", json={"query": "red", "top_k": "many"}), 400, "top_k must be an integer"),
            (client.post("/search/text", json={"query": ["red"]}), 400, "'query' must be a string"),
            (client.post("/search/text", content=b"not json"), 400, "must be JSON"),
            (client.post("/search/image", files={"image": ("a.png", b"not an image", "image/png")}), 415,
             "not a readable image"),
            (client.post("/search/image", files={"image": ("a.png", big.getvalue(), "image/png")}), 413,
             "over the limit"),
            (client.post("/search/image", files={"other": ("a.txt", b"x", "text/plain")}), 400, "no 'image'"),
            (client.get("/gallery/../params.yaml"), 404, ""),
            (client.get("/gallery/nosuch.png"), 404, "no gallery item"),
            (client.get("/gallery/207.png?size=7"), 400, "size must be one of"),
            (client.get("/", params={"q": " "}), 400, "query is empty"),
        ]:
            assert response.status_code == status, (words, response.status_code, response.text)
            assert words in response.text


def test_a_promotion_goes_live_without_a_restart_once_its_index_exists(trained_toy: Path, tmp_path: Path) -> None:
    from rsitr.app.serving.serve import SearchService

    params = load_params(trained_toy, ["tracking.model_prefix=live"])
    first = register_variant(params, "finetune")
    assert promote(params, "finetune").promoted
    images = _gallery(params, tmp_path)
    indexes = tmp_path / "indexes"
    build_gallery_index(params, "models:/live-finetune@champion", images, indexes / "v1",
                        build=GalleryBuild(progress=False))

    service = SearchService(params, indexes / "v1", poll_s=0.2)
    with _client(service) as client:
        assert client.get("/healthz").json()["serving"]["version"] == first.version == "1"
        before = client.post("/search/text", json={"query": "a bare blue field", "top_k": 40}).json()

        # a second version of the same registered model, from another finished run (the zeroshot weights)
        zeroshot = load_trained_model(params, "zeroshot", published_checkpoint(params, "zeroshot"))
        text, image = input_example(params)
        second = register_model(params, "finetune", read_run_record(params, "zeroshot").run_id, model=zeroshot,
                                example_text=text, example_image=image)
        assert second.version == "2"
        assert promote(params, "finetune", force=True, reason="test: serve follows the alias").promoted

        health = _wait(client, lambda h: h["alias_points_to"] == "2")
        assert health["serving"]["version"] == "1"  # no index for v2 yet: the old version keeps serving
        assert "no index for live-finetune v2 yet: rsitr index build --model models:/live-finetune/2" in health["pending"]
        again = client.post("/search/text", json={"query": "a bare blue field", "top_k": 40}).json()
        assert again["results"] == before["results"] and again["model"]["version"] == "1"

        build_gallery_index(params, "models:/live-finetune@champion", images, indexes / "v2",
                            build=GalleryBuild(progress=False))
        health = _wait(client, lambda h: h["serving"]["version"] == "2")
        assert health["pending"] is None and health["serving"]["index"] == str(indexes / "v2")
        after = client.post("/search/text", json={"query": "a bare blue field", "top_k": 40}).json()
        assert after["model"]["version"] == "2"
        expected = load_searcher(params, indexes / "v2").search_text("a bare blue field", 40)["results"]
        assert [r["id"] for r in after["results"]] == [r["id"] for r in expected]
        assert [r["score"] for r in after["results"]] != [r["score"] for r in before["results"]]  # other weights


def _wait(client, done, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        health = client.get("/healthz").json()
        if done(health):
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.2)


def test_serve_params_are_validated(trained_toy: Path) -> None:
    from rsitr.errors import ConfigError

    assert load_params(trained_toy).serve.coarse == "hnsw"
    with pytest.raises(ConfigError, match="serve.coarse: unknown coarse stage 'lsh'; valid coarse stages: exact, "
                                          "hash, hnsw, ivf"):
        load_params(trained_toy, ["serve.coarse=lsh"])
    with pytest.raises(ConfigError, match="serve.fine: unknown fine stage"):
        load_params(trained_toy, ["serve.fine=rerank"])
    with pytest.raises(ConfigError, match="serve.candidates"):
        load_params(trained_toy, ["serve.candidates=0"])


def test_the_logged_model_carries_the_hash_heads_of_its_checkpoint(trained_toy: Path, tmp_path: Path) -> None:
    from rsitr.app.core.paths import ProjectPaths
    from rsitr.app.steps.registry import matching_hash_heads
    from rsitr.retrieval.hash_head import HashHeads, save_hash_heads
    from rsitr.retrieval.gallery_index import sha256_file
    from rsitr.tracking.pyfunc_model import _stage_artifacts, load_model_bundle
    from rsitr.tracking.registry import _bundled_params

    params = load_params(trained_toy, [f"paths.models={tmp_path / 'models'}"])
    source = load_params(trained_toy)
    checkpoint = published_checkpoint(source, "finetune")
    model = load_trained_model(source, "finetune", checkpoint)
    heads = HashHeads(in_dim=128, hidden=32, bits=16)
    heads_file = ProjectPaths.of(params).hash_heads("finetune")
    save_hash_heads(heads_file, heads, checkpoint_sha256="0" * 64)
    assert matching_hash_heads(params, "finetune", checkpoint) is None  # trained on another checkpoint: not shipped
    save_hash_heads(heads_file, heads, checkpoint_sha256=sha256_file(checkpoint))
    assert matching_hash_heads(params, "finetune", checkpoint) == heads_file

    staged = tmp_path / "logged" / "artifacts"
    staged.mkdir(parents=True)
    _stage_artifacts(staged, model, _bundled_params(source, "finetune"), "finetune", heads_file)
    bundle = load_model_bundle(staged.parent)
    assert bundle.variant == "finetune" and bundle.heads is not None
    for key, value in heads.state_dict().items():
        assert torch.equal(bundle.heads.state_dict()[key], value), key
    for key, value in model.state_dict().items():
        assert torch.equal(bundle.model.state_dict()[key], value), key
    (staged / "hash_heads.pt").unlink()
    assert load_model_bundle(staged.parent).heads is None
