"""CFITR's fine stage in coarse-to-fine evaluation: the single-stream module (``pair_scores``).

``SsmStubModel`` is the cells ``StubModel`` (test_coarse_to_fine.py) with what ``CfitrModel``
adds: ``"hash"`` in its embeddings (its own continuous codes) and ``pair_scores``, a
deterministic pair score that ranks differently from the dual cosine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsitr.config.schema import CoarseToFineParams
from rsitr.retrieval.binary_codes import pack_codes
from rsitr.retrieval.c2f_measures import sampled_exhaustive, shortlist_recall
from rsitr.retrieval.coarse_to_fine import (
    CoarseToFineOptions,
    candidate_count,
    coarse_to_fine_matrices,
    evaluate_coarse_to_fine,
)
from rsitr.retrieval.codes import ModelHashCoder, SignCoder, SimHashCoder, as_coder
from rsitr.retrieval.metrics import i2t_ranks, retrieval_metrics, t2i_ranks
from rsitr.retrieval.rescore import PairRescorer, has_pair_scores

from test_coarse_to_fine import StubModel, make_cells, stub_loader

pytestmark = pytest.mark.usefixtures("single_torch_thread")


class SsmStubModel(StubModel):
    """StubModel + own hash codes (a fixed random projection, tanh) + a pair scorer."""

    def __init__(self, bits: int = 16) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(3)
        self.projection = torch.randn(48, bits, generator=generator)  # [48, bits]
        self.weights = torch.rand(48, generator=generator) + 0.5  # [48] positive: a weighted cosine
        self.pair_calls: list[int] = []

    def embed_images(self, images):
        out = super().embed_images(images)
        return {**out, "hash": torch.tanh(out["global"] @ self.projection)}  # [B, bits]

    def embed_texts(self, tokens):
        out = super().embed_texts(tokens)
        return {**out, "hash": torch.tanh(out["global"] @ self.projection)}

    def pair_scores(self, image_embs, text_embs, image_index, text_index):
        self.pair_calls.append(int(image_index.numel()))
        images = image_embs["global"][image_index]  # [M, 48]
        texts = text_embs["global"][text_index]  # [M, 48]
        return (images * texts * self.weights).sum(dim=-1) + 0.05 * (images[:, :24] * texts[:, 24:]).sum(dim=-1)

    def all_pairs(self, image_embs, text_embs) -> np.ndarray:
        n, c = image_embs["global"].shape[0], text_embs["global"].shape[0]
        grid = torch.cartesian_prod(torch.arange(n), torch.arange(c))  # [N C, 2]
        return self.pair_scores(image_embs, text_embs, grid[:, 0], grid[:, 1]).reshape(n, c).numpy()


def _embeddings(model, split):
    from rsitr.retrieval.evaluate import encode_split

    image_embs, text_embs, _ = encode_split(model, split, stub_loader(), 64, torch.device("cpu"))
    return image_embs, text_embs


@pytest.fixture(scope="module")
def cells_ssm(tmp_path_factory, single_torch_thread) -> dict:
    model = SsmStubModel()
    test = make_cells(tmp_path_factory.mktemp("cells_ssm") / "test", 1, seed=1)  # 48 images, 144 captions
    image_embs, text_embs = _embeddings(model, test)
    return {"model": model, "test": test, "images": image_embs, "texts": text_embs,
            "ssm": model.all_pairs(image_embs, text_embs)}


def test_whole_gallery_shortlist_gives_exactly_the_exhaustive_ssm_ranking(cells_ssm):
    model, test = cells_ssm["model"], cells_ssm["test"]
    params = CoarseToFineParams(bits=16, candidate_share=1.0)
    result = evaluate_coarse_to_fine(model, None, test, stub_loader(), 64, "cpu", params)
    owner = test.caption_image
    np.testing.assert_array_equal(result["ranks"].i2t, i2t_ranks(cells_ssm["ssm"], owner))
    np.testing.assert_array_equal(result["ranks"].t2i, t2i_ranks(cells_ssm["ssm"], owner))
    assert result["metrics"] == pytest.approx(retrieval_metrics(cells_ssm["ssm"], owner))
    assert result["fine_stage"] == "ssm" and result["fine_share"] == 1.0
    assert result["shortlist_recall_i2t"] == result["shortlist_recall_t2i"] == 100.0


def test_c2f_ranking_of_the_k_is_the_k_sorted_by_ssm_score(cells_ssm):
    model, images, texts, ssm = cells_ssm["model"], cells_ssm["images"], cells_ssm["texts"], cells_ssm["ssm"]
    coder = SimHashCoder(16, seed=0)
    options = CoarseToFineOptions(candidates=12, candidate_share=0.0, ppsr=True)
    out = coarse_to_fine_matrices(coder.codes("image", images), coder.codes("text", texts), options,
                                  fine=PairRescorer.for_model(model, images, texts))
    for caption, cand in enumerate(out["candidates_t2i"]):  # [K] images of the caption
        by_c2f = np.argsort(-out["t2i"][:, caption], kind="stable")[: len(cand)]
        assert by_c2f.tolist() == sorted(cand.tolist(), key=lambda i: -ssm[i, caption])
    for image, cand in enumerate(out["candidates_i2t"]):  # [K] captions of the image
        by_c2f = np.argsort(-out["i2t"][image], kind="stable")[: len(cand)]
        assert by_c2f.tolist() == sorted(cand.tolist(), key=lambda c: -ssm[image, c])


def test_pair_rescorer_sends_batches_and_matches_one_call(cells_ssm):
    model, images, texts = cells_ssm["model"], cells_ssm["images"], cells_ssm["texts"]
    queries, candidates = np.arange(5), np.array([[0, 3, 7], [1, 1, 2], [4, 0, 9], [8, 6, 5], [2, 3, 4]])
    model.pair_calls.clear()
    batched = PairRescorer(model.pair_scores, images, texts, batch=4)("i2t", queries, candidates)  # [5, 3]
    assert model.pair_calls == [4, 4, 4, 3]
    np.testing.assert_allclose(batched, cells_ssm["ssm"][queries[:, None], candidates], rtol=1e-6)
    t2i = PairRescorer(model.pair_scores, images, texts)("t2i", queries, candidates)  # captions -> images
    np.testing.assert_allclose(t2i, cells_ssm["ssm"][candidates, queries[:, None]], rtol=1e-6)
    assert has_pair_scores(model) and not has_pair_scores(StubModel())


def test_k_is_at_least_min_candidates_each_way():
    # a small test set: 125 images, 625 captions, candidate_share 0.055
    options = CoarseToFineOptions.of(CoarseToFineParams())
    assert options.shortlist(125) == 10  # ceil(0.055 x 125) = 7 -> 10: t2i R@10 reachable
    assert options.caption_shortlist(125, 625) == 10  # an image query re-scores the same K captions
    assert options.shortlist(1008) == 56  # the share rules where it gives more (synth_rsicd: 1,008 images)
    assert options.shortlist(6) == 6  # never more than the gallery
    assert options.caption_shortlist(6, 30) == 30  # K covering every image: every caption too
    assert candidate_count(125, 70, 0.064) == 8  # without the minimum: the old K
    assert CoarseToFineParams().min_candidates == 10


def test_shortlist_recall_on_a_hand_example():
    owner = np.array([0, 0, 1, 2, 2])  # 3 images, 5 captions
    cand_t2i = np.array([[0, 1], [2, 1], [1, 0], [0, 1], [2, 0]])  # hits: yes, no, yes, no, yes
    cand_i2t = np.array([[4, 1], [0, 3], [3, 2]])  # image 0: caption 1 is its own; 1: no; 2: caption 3
    assert shortlist_recall(cand_i2t, cand_t2i, owner) == pytest.approx({"i2t": 200 / 3, "t2i": 60.0})


def test_simhash_codes_are_deterministic_by_seed():
    features = {"global": torch.randn(20, 32, generator=torch.Generator().manual_seed(1))}
    first = SimHashCoder(64, seed=5).codes("image", features)
    assert first.shape == (20, 8)
    np.testing.assert_array_equal(first, SimHashCoder(64, seed=5).codes("text", features))
    assert not np.array_equal(first, SimHashCoder(64, seed=6).codes("image", features))


def test_sign_and_model_hash_coders():
    embeddings = {"global": torch.randn(4, 16), "hash": torch.tanh(torch.randn(4, 24))}
    np.testing.assert_array_equal(SignCoder().codes("image", embeddings), pack_codes(embeddings["global"]))
    assert SignCoder().bits_of(embeddings) == 16
    assert as_coder(None).bits_of(embeddings) == 24
    np.testing.assert_array_equal(ModelHashCoder().codes("text", embeddings), pack_codes(embeddings["hash"]))


def test_evaluation_of_an_ssm_model_reports_every_reference(cells_ssm):
    model, test = cells_ssm["model"], cells_ssm["test"]
    params = CoarseToFineParams(bits=16, candidate_share=0.1, exhaustive_sample=(10, 30))
    result = evaluate_coarse_to_fine(model, None, test, stub_loader(), 64, "cpu", params)
    assert result["codes"] == "learned" and result["bits"] == 16  # the model's own hash codes
    assert result["candidates_t2i"] == 10 and result["candidates_i2t"] == 10  # max(10, ceil(4.8)), the same K each way
    for key in ("dual_metrics", "coarse_metrics", "exhaustive_metrics"):
        assert set(result[key]) >= {"i2t_R1", "t2i_R10", "mR"}
    assert result["simhash"]["bits"] == 16 and "mR" in result["simhash"]["coarse_metrics"]
    ssm = result["exhaustive_ssm"]
    assert ssm["sampled"] and (ssm["image_queries"], ssm["caption_queries"]) == (10, 30)
    assert ssm["pairs"] == 10 * 144 + 30 * 48 and ssm["all_pairs"] == 48 * 144
    assert 0.0 < result["fine_share"] < 1.0


def test_sampled_exhaustive_with_every_query_is_the_exhaustive_ranking(cells_ssm):
    ssm, owner = cells_ssm["ssm"], cells_ssm["test"].caption_image
    pairs = PairRescorer(cells_ssm["model"].pair_scores, cells_ssm["images"], cells_ssm["texts"])
    out = sampled_exhaustive(pairs.score_pairs, owner, ssm.shape[0], (0, 0))
    assert not out["sampled"]
    assert out["metrics"] == pytest.approx(retrieval_metrics(ssm, owner))


# ----------------------------------------------------------------------------- serving: serve.fine ssm


@pytest.fixture(scope="module")
def ssm_index(cells_ssm, tmp_path_factory):
    from rsitr.retrieval.gallery_build import GalleryEncoder, IndexBuildOptions, build_index
    from rsitr.retrieval.gallery_index import GalleryIndex

    test = cells_ssm["test"]
    root = tmp_path_factory.mktemp("ssm_index")
    out = build_index(GalleryEncoder(cells_ssm["model"], None, stub_loader()), test.image_paths, root / "index",
                      ids=test.image_ids, model_info={"variant": "cfitr"}, options=IndexBuildOptions(progress=False))
    return GalleryIndex.load(out)


def test_serve_fine_ssm_reranks_the_shortlist_by_pair_score(cells_ssm, ssm_index):
    from rsitr.retrieval.searcher import GallerySearcher, SearchOptions

    model, test = cells_ssm["model"], cells_ssm["test"]
    assert ssm_index.has_codes and ssm_index.bits == 16  # the model's own hash codes, no heads
    searcher = GallerySearcher(ssm_index, model, options=SearchOptions(coarse="hash", fine="ssm", candidates=20))
    caption = 7
    found = searcher.search_text(test.captions[caption], top_k=20)
    query = searcher.embed_text(test.captions[caption])
    ids = [test.image_ids.index(r["id"]) for r in found["results"]]
    scores = model.pair_scores(cells_ssm["images"], query, torch.tensor(ids), torch.zeros(len(ids), dtype=torch.long))
    assert found["fine"] == "ssm" and found["candidates"] == 20
    assert [r["score"] for r in found["results"]] == pytest.approx(scores.tolist(), abs=2e-3)  # float16 gallery
    served = [r["score"] for r in found["results"]]
    assert served == sorted(served, reverse=True)


def test_serve_fine_ssm_is_refused_for_a_model_without_pair_scores(cells_ssm, ssm_index):
    from rsitr.errors import ConfigError
    from rsitr.retrieval.searcher import GallerySearcher, SearchOptions

    with pytest.raises(ConfigError, match=r"serve\.fine: 'ssm' needs .* StubModel has none: use one of model, dense, none"):
        GallerySearcher(ssm_index, StubModel(), options=SearchOptions(coarse="exact", fine="ssm"))


def test_the_app_names_the_variant_when_ssm_is_refused(ssm_index):
    from rsitr.app.serving.gallery import ResolvedModel, SearchChoice, make_searcher
    from rsitr.config import load_params
    from rsitr.errors import ConfigError

    params = load_params("params.yaml", ["serve.fine=ssm", "serve.coarse=exact"])
    resolved = ResolvedModel(record={"uri": "finetune"}, model=StubModel(), heads=None, batch_size=8, ppsr_k=10,
                             variant="finetune")
    with pytest.raises(ConfigError, match=r"variant finetune has none: use one of model, dense, none$"):
        make_searcher(params, ssm_index, resolved, SearchChoice(device="cpu"))
