"""Coarse-to-fine search: FAISS Hamming kNN, single-query PPSR, fine re-scoring, the searcher, end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsitr.retrieval.binary_codes import hamming_distance, hamming_topk, pack_codes
from rsitr.retrieval.gallery_build import GalleryEncoder, IndexBuildOptions, build_index, list_images
from rsitr.retrieval.gallery_index import GalleryIndex
from rsitr.retrieval.hamming_search import HammingIndex, hamming_similarity, ppsr_candidates, reference_hubness
from rsitr.retrieval.rescore import dense_rescore, fine_rescore
from rsitr.retrieval.searcher import GallerySearcher, SearchOptions

from test_coarse_to_fine import TEMPLATES, StubModel, make_cells, small_c2f, stub_loader


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.mark.parametrize("bits", [8, 64, 128])
def test_faiss_hamming_equals_unpacked_numpy(bits):
    rng = np.random.default_rng(bits)
    gallery = pack_codes(rng.standard_normal((300, bits)))
    queries = pack_codes(rng.standard_normal((7, bits)))
    index = HammingIndex(gallery)
    idx, dist = index.search(queries, 300)
    # packed FAISS distances == numpy popcount == sum of unequal unpacked bits
    unpacked = np.unpackbits(queries, axis=1)[:, None, :] != np.unpackbits(gallery, axis=1)[None, :, :]
    expected = unpacked.sum(axis=2)  # [Q, N]
    np.testing.assert_array_equal(np.take_along_axis(expected, idx, 1), dist)
    np.testing.assert_array_equal(hamming_distance(queries, gallery), expected)
    # rows sorted by (distance, index): identical to the numpy reference top-k
    ref_idx, ref_dist = hamming_topk(queries, gallery, 25)
    top_idx, top_dist = index.search(queries, 25)
    np.testing.assert_array_equal(top_dist, ref_dist)
    np.testing.assert_array_equal(top_idx, ref_idx)


def _direct_ppsr(query, gallery, hub, ppsr_k, bits):
    """Whole-gallery S' = 2 s - mean(top-k of the query's row) - hub, numpy only."""
    s = 1.0 - 2.0 * hamming_distance(query, gallery).astype(np.float64) / bits  # [Q, N]
    r_q = np.sort(s, axis=1)[:, ::-1][:, :ppsr_k].mean(axis=1)  # [Q]
    return 2 * s - r_q[:, None] - hub[None, :], r_q


@pytest.mark.parametrize("hub_scale", [0.05, 2.0])  # 2.0: PPSR reaches far outside the Hamming top-K
def test_single_query_ppsr_candidates_match_a_direct_computation(hub_scale):
    rng = np.random.default_rng(1)
    bits, k, ppsr_k = 32, 6, 4
    gallery = pack_codes(rng.standard_normal((500, bits)))
    queries = pack_codes(rng.standard_normal((5, bits)))
    hub = (hub_scale * rng.standard_normal(500)).astype(np.float32)
    out = ppsr_candidates(HammingIndex(gallery), queries, k, hubness=hub, ppsr_k=ppsr_k)
    adjusted, r_q = _direct_ppsr(queries, gallery, hub.astype(np.float64), ppsr_k, bits)
    np.testing.assert_allclose(out["query_term"], r_q, atol=1e-6)
    for q in range(queries.shape[0]):
        ref = sorted(range(500), key=lambda g: (-adjusted[q, g], g))[:k]
        np.testing.assert_allclose(out["adjusted"][q], adjusted[q, ref], atol=1e-5)
        np.testing.assert_allclose(out["adjusted"][q], adjusted[q, out["indices"][q]], atol=1e-5)
        np.testing.assert_allclose(out["coarse"][q], 1 - 2 * hamming_distance(queries[q : q + 1], gallery)[0, out["indices"][q]] / bits)
    plain = ppsr_candidates(HammingIndex(gallery), queries, k)
    np.testing.assert_array_equal(plain["indices"], hamming_topk(queries, gallery, k)[0])


def test_reference_hubness_and_dense_rescore():
    rng = np.random.default_rng(2)
    gallery = pack_codes(rng.standard_normal((40, 16)))
    reference = pack_codes(rng.standard_normal((25, 16)))
    sims = hamming_similarity(hamming_distance(gallery, reference), 16)
    expected = np.sort(sims, axis=1)[:, -5:].mean(axis=1)
    np.testing.assert_allclose(reference_hubness(gallery, reference, 5), expected, atol=1e-6)
    emb = rng.standard_normal((40, 8)).astype(np.float16)
    query = rng.standard_normal((3, 8)).astype(np.float32)
    idx = rng.integers(0, 40, (3, 7))
    direct = np.array([[emb[i].astype(np.float32) @ query[q] for i in idx[q]] for q in range(3)])
    np.testing.assert_allclose(dense_rescore(query, emb, idx), direct, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def searchable(tmp_path_factory):
    from rsitr.retrieval.coarse_to_fine import train_hash_heads

    root = tmp_path_factory.mktemp("search")
    model = StubModel()
    train = make_cells(root / "train", 3, seed=0)
    make_cells(root / "gallery", 1, seed=5)
    heads, _ = train_hash_heads(model, train, stub_loader(), small_c2f(), "cpu")
    ids, paths = list_images(root / "gallery")
    out = build_index(GalleryEncoder(model, heads, stub_loader()), paths, root / "index", ids=ids,
                      options=IndexBuildOptions(chunk_size=16, progress=False))
    return {"model": model, "heads": heads, "index": GalleryIndex.load(out)}


def _hash_searcher(searchable, **options):
    """The CFITR pipeline: hash codes + PPSR coarse stage, the model's own scorer as the fine stage."""
    return GallerySearcher(searchable["index"], searchable["model"], heads=searchable["heads"],
                           options=SearchOptions(coarse="hash", **options))


def test_text_search_finds_the_right_image(searchable):
    searcher = _hash_searcher(searchable, candidates=8)
    hits = []
    for colour in ("red", "green", "blue"):
        for cell in range(16):
            caption = TEMPLATES[cell % 3].format(colour=colour, cell=cell)
            result = searcher.search_text(caption, 5)
            hits.append(f"{colour}_{cell:02d}_0.png" in [r["id"] for r in result["results"]])
            assert [r["rank"] for r in result["results"]] == [1, 2, 3, 4, 5]
            scores = [r["score"] for r in result["results"]]
            assert scores == sorted(scores, reverse=True)
    assert np.mean(hits) >= 0.9


def test_search_modes(searchable):
    model, index = searchable["model"], searchable["index"]
    caption = "a blue square in cell 9"
    fine = _hash_searcher(searchable, candidates=8).search_text(caption, 3)
    assert fine["results"][0]["id"] == "blue_09_0.png"
    # the fine scores are the model's cosine over the float16 gallery embeddings
    q = model.embed_texts(model.tokenize([caption]))["global"][0].numpy()
    top = index.ids.index(fine["results"][0]["id"])
    g = index.embeddings["global"][top].astype(np.float32)
    assert fine["results"][0]["score"] == pytest.approx(float(g @ q / np.linalg.norm(g)), abs=1e-5)
    coarse = _hash_searcher(searchable, candidates=8, fine="none", use_ppsr=False).search_text(caption, 3)
    assert all(r["score"] == r["coarse"] for r in coarse["results"])
    by_image = _hash_searcher(searchable).search_image(index.paths[top], 2)
    assert by_image["mode"] == "image -> image" and by_image["results"][0]["id"] == "blue_09_0.png"
    assert by_image["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)


# ----------------------------------------------------------------------------- end to end (slow)

DRIVER = """
import argparse, sys
from rsitr.errors import RsitrError
from rsitr.cli.retrieval import register
parser = argparse.ArgumentParser(prog="rsitr")
register(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args()
try:
    args.handler(args)
except RsitrError as exc:
    print(f"rsitr: error: {exc}", file=sys.stderr)
    sys.exit(exc.exit_code)
"""

QUADRANTS = {"top left": (0, 0), "top right": (0, 1), "bottom left": (1, 0), "bottom right": (1, 1)}
PALETTE = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 50, 220), "yellow": (230, 220, 30),
           "white": (245, 245, 245), "purple": (150, 40, 170)}
PHRASES = ["a {c} square in the {q}", "the {q} holds a {c} block", "{c} patch, {q} corner",
           "there is a {c} square at the {q}", "a {c} shape in the {q} of the image"]


def _write_quadrant_dataset(root):
    """6 colours x 4 quadrants; train 8, val 1, test 1 image per combination, 5 captions each."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for split, copies in (("train", 8), ("val", 1), ("test", 1)):
        (root / "img" / split).mkdir(parents=True, exist_ok=True)
        for colour, rgb in PALETTE.items():
            for quadrant, (r, c) in QUADRANTS.items():
                for copy in range(copies):
                    pixels = rng.normal(90, 25, (64, 64, 3))
                    pixels[r * 32 + 4 : r * 32 + 28, c * 32 + 4 : c * 32 + 28] = rgb
                    name = f"{colour}_{quadrant.replace(' ', '_')}_{copy}.png"
                    path = root / "img" / split / name
                    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
                    for k, phrase in enumerate(PHRASES):
                        rows.append(dict(dataset="quad", image_id=f"{split}/{name}", image_key=name, image_path=str(path),
                                         caption=phrase.format(c=colour, q=quadrant), language="en", official_split=split,
                                         caption_index=k, split=split, cluster=len(rows)))
    (root / "processed").mkdir()
    pd.DataFrame(rows).to_parquet(root / "processed" / "manifest.parquet")
    (root / "processed" / "keywords.txt").write_text("square\n")
    (root / "params.yaml").write_text(
        f"paths: {{data: {root}, models: {root}/models, metrics: {root}/metrics, reports: {root}/reports}}\n"
        f"datasets:\n  - {{name: quad, format: precomp, root: {root}}}\n"
        "train: {epochs: 10, batch_size: 32, budget: 1.0, lr: 1.0e-3, warmup_share: 0.2, device: cpu}\n"
        f"tracking: {{uri: 'sqlite:///{root}/mlflow.db'}}\n"
        "c2f: {bits: 64, hidden: 128, epochs: 30, candidates: 12, batch_size: 32}\n"
        "variants:\n  finetune: {method: finetune}\n"
    )
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_cli_end_to_end_with_a_trained_tiny_model(tmp_path):
    """Train rsitr-tiny, train heads, evaluate c2f, build an index (killed and resumed), search."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    rows = _write_quadrant_dataset(tmp_path)
    params = str(tmp_path / "params.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def rsitr(*args, check=True):
        result = subprocess.run([sys.executable, "-m", "rsitr.cli", *args], env=env, capture_output=True, text=True)
        assert not check or result.returncode == 0, result.stderr
        return result

    def c2f_cli(*args, check=True):
        result = subprocess.run([sys.executable, "-c", DRIVER, *args], env=env, capture_output=True, text=True)
        assert not check or result.returncode == 0, result.stderr
        return result

    rsitr("train", "--variant", "finetune", "--params", params, "--no-track")
    c2f_cli("c2f", "run", "--variant", "finetune", "--params", params)
    metrics = json.loads((tmp_path / "metrics" / "c2f" / "finetune" / "quad.json").read_text())
    assert metrics["label"] == "finetune + c2f" and 0 <= metrics["mR"] <= 100
    assert (tmp_path / "models" / "finetune" / "hash_heads.pt").is_file()

    # index build killed midway, then resumed: same bytes as an uninterrupted build
    build = ["index", "build", "--model", "finetune", "--images", str(tmp_path / "img"), "--params", params,
             "--chunk-size", "8", "--batch-size", "8", "--no-progress"]
    c2f_cli(*build, "--out", str(tmp_path / "straight"))
    killed = subprocess.Popen([sys.executable, "-c", DRIVER, *build, "--out", str(tmp_path / "resumed")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "resumed" / "_build" / "build.json"
    deadline = time.time() + 120
    while time.time() < deadline and killed.poll() is None:
        if state.is_file() and len(json.loads(state.read_text())["done"]) >= 3:
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    assert not (tmp_path / "resumed" / "index.json").exists()
    c2f_cli(*build, "--out", str(tmp_path / "resumed"))
    for name in ["codes.npy", "emb_global.npy", "hub_text.npy", "hub_image.npy"]:
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name

    # search: the test gallery (24 images); the right image in the top 5 for most test captions
    c2f_cli("index", "build", "--model", "finetune", "--images", str(tmp_path / "img" / "test"), "--params", params,
            "--out", str(tmp_path / "test_index"), "--no-progress")
    out = c2f_cli("search", "--index", str(tmp_path / "test_index"), "--params", params, "--json", "--top-k", "5",
                  "a red square in the top left")
    payload = json.loads(out.stdout)
    assert len(payload["results"]) == 5 and payload["mode"] == "text -> image"
    from rsitr.config import load_params
    from rsitr.models.trained import load_trained_model

    loaded = load_params(params, [])
    model = load_trained_model(loaded, "finetune", tmp_path / "models" / "finetune" / "best.pt")
    index = GalleryIndex.load(tmp_path / "test_index")
    heads, _ = index.load_heads()
    searcher = GallerySearcher(index, model, heads=heads, options=SearchOptions(coarse="hash", candidates=12))
    tests = rows[rows["split"] == "test"]
    hits = []
    for caption, image_key in zip(tests["caption"], tests["image_key"]):
        result = searcher.search_text(caption, 5)
        hits.append(image_key in [r["id"] for r in result["results"]])
    print(f"right image in the top 5: {np.mean(hits):.3f} of {len(hits)} test captions")
    assert np.mean(hits) > 0.5


def test_the_served_searcher_matches_c2f_and_exact_search(searchable, tmp_path):
    from rsitr.errors import ConfigError, ModelError
    from rsitr.retrieval.searcher import build_float_coarse

    model, heads, index = searchable["model"], searchable["heads"], searchable["index"]
    caption = "a green square in cell 4"
    # hash coarse stage + the model's scorer: the CFITR pipeline, composed here from its primitives
    hashed = _hash_searcher(searchable, candidates=8).search_text(caption, 5)
    query = {k: v.float() for k, v in model.embed_texts(model.tokenize([caption])).items()}  # [1, ...]
    shortlist = ppsr_candidates(index.hamming, heads.pack("text", query["global"]), 8, hubness=index.hubness["text"],
                                ppsr_k=int(index.manifest["ppsr_k"]))["indices"][0]  # [8]
    rescored = fine_rescore(model.score, index.embeddings, query, shortlist)  # [8]
    reference = np.lexsort((shortlist, -rescored))[:5]
    assert [r["id"] for r in hashed["results"]] == [index.ids[shortlist[j]] for j in reference]
    np.testing.assert_allclose([r["score"] for r in hashed["results"]], rescored[reference], atol=1e-6)
    # float coarse stages with a shortlist covering the gallery: the exact ranking of the model's scorer
    q = model.embed_texts(model.tokenize([caption]))
    gallery = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in index.embeddings.items()}
    scores = model.score(gallery, q)[:, 0].numpy()
    exact = [index.ids[i] for i in np.lexsort((np.arange(len(scores)), -scores))[:5]]
    for kind in ("hnsw", "exact", "ivf"):
        found = GallerySearcher(index, model, options=SearchOptions(coarse=kind, candidates=len(index)))
        assert [r["id"] for r in found.search_text(caption, 5)["results"]] == exact, kind
    # the coarse index saved beside an index is loaded, not rebuilt, when it matches
    build_float_coarse("hnsw", index.embeddings["global"], {"m": 8}).save(tmp_path / "coarse")
    loaded = GallerySearcher(index, model, options=SearchOptions(coarse="hnsw", coarse_dir=tmp_path / "coarse"))
    assert loaded.coarse.m == 8
    # an index built without hash heads holds no codes: float stages work, 'hash' says why not
    ids, paths = index.ids, index.paths
    plain = GalleryIndex.load(build_index(GalleryEncoder(model, None, stub_loader()), paths, tmp_path / "plain", ids=ids,
                                          options=IndexBuildOptions(chunk_size=16, progress=False)))
    assert plain.codes is None and plain.bits is None and not plain.hubness
    exact_plain = GallerySearcher(plain, model, options=SearchOptions(coarse="exact", candidates=len(plain)))
    assert exact_plain.search_text(caption, 5)["results"][0]["id"] == exact[0]
    with pytest.raises(ModelError, match="needs hash heads"):
        GallerySearcher(plain, model, heads=heads, options=SearchOptions(coarse="hash"))
    with pytest.raises(ConfigError, match="valid coarse stages: exact, hash, hnsw, ivf"):
        GallerySearcher(index, model, options=SearchOptions(coarse="lsh"))
