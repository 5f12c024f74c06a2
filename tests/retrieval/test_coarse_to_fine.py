"""Coarse-to-fine evaluation (CFITR): PPSR on the coarse matrix, candidate re-scoring, metrics.

Also home of ``StubModel`` and ``make_cells``, a tiny deterministic retrieval model and
its image/caption data, which ``test_index.py`` and ``test_search.py`` import: an image is
one coloured cell on a 4 x 4 grid, a caption names the colour and the cell, and both
embed to the same one-hot ``(colour, cell)`` vector (blurred by the image's noise).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from rsitr.config.schema import CoarseToFineParams
from rsitr.retrieval.binary_codes import hamming_distance, pack_codes
from rsitr.retrieval.coarse_to_fine import (
    CoarseToFineOptions,
    coarse_to_fine_matrices,
    candidate_count,
    evaluate_coarse_to_fine,
    fine_pair_share,
    metrics_from_matrices,
    train_hash_heads,
)
from rsitr.retrieval.hash_head import HashHeads
from rsitr.retrieval.metrics import retrieval_metrics
from rsitr.retrieval.rescore import ModelRescorer
from rsitr.data.images import ImageLoader
from rsitr.data.manifest import RetrievalSplit

COLOURS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
SIZE = 32  # pixels; 4 x 4 cells of 8 pixels
TEMPLATES = ["a {colour} square in cell {cell}", "{colour} patch at cell {cell}", "cell {cell} holds a {colour} block"]


class StubModel(nn.Module):
    """RetrievalModel contract without open_clip: embeddings are mean colours per cell."""

    image_size = SIZE
    mean = (0.0, 0.0, 0.0)
    std = (1.0, 1.0, 1.0)

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1), requires_grad=False)
        self.embed_calls = 0

    def tokenize(self, texts) -> torch.Tensor:
        out = torch.zeros(len(texts), 3 * 16)  # [B, 48] one-hot (colour, cell)
        for row, text in enumerate(texts):
            words = text.replace(",", " ").split()
            colour = next(i for i, name in enumerate(COLOURS) if name in words)
            cell = int(next(w for w in words if w.isdigit()))
            out[row, colour * 16 + cell] = 1.0
        return out

    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.embed_calls += 1
        cells = F.avg_pool2d(images, SIZE // 4)  # [B, 3, 4, 4]
        return {
            "global": F.normalize(cells.flatten(1), dim=-1),  # [B, 48]
            "tokens": cells.flatten(2).transpose(1, 2),  # [B, 16, 3]
        }

    @torch.no_grad()
    def embed_texts(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"global": F.normalize(tokens.float(), dim=-1), "mask": torch.ones(tokens.shape[0], 1)}

    @torch.no_grad()
    def score(self, image_embs: dict[str, torch.Tensor], text_embs: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(image_embs["global"], dim=-1) @ F.normalize(text_embs["global"], dim=-1).T


def make_cells(folder: Path, n_per_combo: int, seed: int, noise: float = 0.25) -> RetrievalSplit:
    """``n_per_combo`` noisy images of each of the 48 (colour, cell) combinations, 3 captions each."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths, captions, owner = [], [], []
    for colour_index, (colour, rgb) in enumerate(COLOURS.items()):
        for cell in range(16):
            for copy in range(n_per_combo):
                pixels = rng.uniform(0, noise, (SIZE, SIZE, 3))
                r, c = divmod(cell, 4)
                pixels[r * 8 : r * 8 + 8, c * 8 : c * 8 + 8] += np.array(rgb) * rng.uniform(0.6, 1.0)
                path = folder / f"{colour}_{cell:02d}_{copy}.png"
                Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).save(path)
                for template in TEMPLATES:
                    captions.append(template.format(colour=colour, cell=cell))
                    owner.append(len(paths))
                paths.append(str(path))
    ids = [Path(p).name for p in paths]
    return RetrievalSplit(ids, paths, captions, np.array(owner, dtype=np.int64), ["en"] * len(captions))


def stub_loader() -> ImageLoader:
    return ImageLoader(SIZE, StubModel.mean, StubModel.std, cache=False)


def small_c2f(**changes) -> CoarseToFineParams:
    # batch-averaged regularisers (the rsitr option): with the released sums this 32-bit stub's
    # coarse mR is ~72 instead of > 80 (the summed default is covered in test_hash_head.py)
    values = dict(bits=32, hidden=64, epochs=40, lr=3e-3, batch_size=32, candidates=10, candidate_share=0.0,
                  regulariser_reduction="mean")
    values.update(changes)
    return CoarseToFineParams(**values)


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def cells(tmp_path_factory, single_torch_thread) -> dict:
    root = tmp_path_factory.mktemp("cells")
    model = StubModel()
    train = make_cells(root / "train", 3, seed=0)
    test = make_cells(root / "test", 1, seed=1)
    heads, history = train_hash_heads(model, train, stub_loader(), small_c2f(), "cpu")
    return {"model": model, "train": train, "test": test, "heads": heads, "history": history}


# ----------------------------------------------------------------------------- independent references


def _ppsr_loop(s: np.ndarray, k: int) -> np.ndarray:
    rows = [np.mean(sorted(s[i], reverse=True)[:k]) for i in range(s.shape[0])]
    cols = [np.mean(sorted(s[:, j], reverse=True)[:k]) for j in range(s.shape[1])]
    return np.array([[2 * s[i, j] - rows[i] - cols[j] for j in range(s.shape[1])] for i in range(s.shape[0])])


def _unpacked_similarity(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """Cosine of ±1 codes from their unpacked bits: (+-1 inner product) / bits."""
    ua = np.unpackbits(a, axis=1).astype(np.float64) * 2 - 1
    ub = np.unpackbits(b, axis=1).astype(np.float64) * 2 - 1
    return ua @ ub.T / bits


def _random_setup(n_images=12, n_captions=30, bits=16, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    image_codes = pack_codes(rng.standard_normal((n_images, bits)))
    text_codes = pack_codes(rng.standard_normal((n_captions, bits)))
    images = {"global": torch.from_numpy(rng.standard_normal((n_images, dim))).float()}
    texts = {"global": torch.from_numpy(rng.standard_normal((n_captions, dim))).float()}
    owner = np.arange(n_captions) % n_images
    return image_codes, text_codes, images, texts, owner


def _cosine(image_embs, text_embs):
    return F.normalize(image_embs["global"], dim=-1) @ F.normalize(text_embs["global"], dim=-1).T


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("use_ppsr", [True, False])
def test_coarse_matrix_and_candidates_match_direct_computation(use_ppsr):
    image_codes, text_codes, images, texts, _ = _random_setup()
    k_cand, k_ppsr = 5, 3
    options = CoarseToFineOptions(candidates=k_cand, candidate_share=0.0, ppsr=use_ppsr, ppsr_k=k_ppsr)
    out = coarse_to_fine_matrices(image_codes, text_codes, options, fine=ModelRescorer(_cosine, images, texts))
    s = _unpacked_similarity(image_codes, text_codes, 16)
    expected = _ppsr_loop(s, k_ppsr) if use_ppsr else s
    np.testing.assert_allclose(out["coarse"], expected, atol=1e-9)
    # candidates: top-k by the adjusted score, ties by ascending index (sorted() is stable)
    for j in range(s.shape[1]):
        ref = sorted(range(s.shape[0]), key=lambda i: (-expected[i, j], i))[:k_cand]
        assert out["candidates_t2i"][j].tolist() == ref
    for i in range(s.shape[0]):
        ref = sorted(range(s.shape[1]), key=lambda j: (-expected[i, j], j))[:k_cand]
        assert out["candidates_i2t"][i].tolist() == ref


def test_rescored_candidates_rank_by_fine_score_above_the_rest():
    image_codes, text_codes, images, texts, owner = _random_setup()
    options = CoarseToFineOptions(candidates=4, candidate_share=0.0, ppsr=True, ppsr_k=3)
    out = coarse_to_fine_matrices(image_codes, text_codes, options, fine=ModelRescorer(_cosine, images, texts))
    fine = _cosine(images, texts).numpy().astype(np.float64)  # [N, C]
    for j in range(texts["global"].shape[0]):
        cand = out["candidates_t2i"][j]
        column = out["t2i"][:, j]
        ranking = sorted(range(column.shape[0]), key=lambda i: (-column[i], i))
        expected_top = sorted(cand.tolist(), key=lambda i: (-fine[i, j], i))
        assert ranking[:4] == expected_top
        rest = [i for i in range(column.shape[0]) if i not in set(cand.tolist())]
        assert ranking[4:] == sorted(rest, key=lambda i: (-out["coarse"][i, j], i))
    for i in range(images["global"].shape[0]):
        cand = out["candidates_i2t"][i]
        row = out["i2t"][i]
        ranking = sorted(range(row.shape[0]), key=lambda j: (-row[j], j))
        assert ranking[:4] == sorted(cand.tolist(), key=lambda j: (-fine[i, j], j))


def test_all_candidates_equals_exhaustive_and_coarse_only_equals_coarse():
    image_codes, text_codes, images, texts, owner = _random_setup()
    fine = ModelRescorer(_cosine, images, texts)
    full = coarse_to_fine_matrices(image_codes, text_codes, CoarseToFineOptions(candidates=10_000, candidate_share=0.0),
                                   fine=fine)
    exhaustive = retrieval_metrics(_cosine(images, texts), owner)
    assert metrics_from_matrices(full["i2t"], full["t2i"], owner) == pytest.approx(exhaustive)
    only = CoarseToFineOptions(candidates=3, candidate_share=0.0, coarse_only=True)
    coarse = coarse_to_fine_matrices(image_codes, text_codes, only, fine=fine)
    assert metrics_from_matrices(coarse["i2t"], coarse["t2i"], owner) == retrieval_metrics(coarse["coarse"], owner)
    assert coarse["timings"]["fine_pairs"] == 0


def test_hash_head_training_on_frozen_embeddings(cells):
    history = cells["history"]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert set(history[0]) >= {"loss", "hinge", "quantization", "balance"}
    heads: HashHeads = cells["heads"]
    assert heads.reference_codes["text"].shape == (len(cells["train"].captions), 4)
    assert heads.reference_codes["image"].shape == (cells["train"].num_images, 4)


def test_evaluate_coarse_to_fine_on_stub(cells):
    model, heads, test = cells["model"], cells["heads"], cells["test"]
    result = evaluate_coarse_to_fine(model, heads, test, stub_loader(), 16, "cpu", small_c2f(candidates=10))
    keys = ["i2t_R1", "i2t_R5", "i2t_R10", "t2i_R1", "t2i_R5", "t2i_R10", "mR"]
    assert list(result["metrics"]) == keys
    assert result["exhaustive_metrics"]["mR"] > 95  # the stub is near perfect on its own data
    assert result["coarse_metrics"]["mR"] > 80  # the 32-bit codes learned the structure
    assert result["metrics"]["mR"] >= result["coarse_metrics"]["mR"]
    assert result["metrics"]["t2i_R10"] >= 90
    assert result["timings"]["fine_pairs"] == 10 * (test.num_images + len(test.captions))
    n, c = test.num_images, len(test.captions)
    assert 10 / n <= result["timings"]["fine_pair_share"] <= 10 / n + 10 / c  # union of both directions' pairs
    # every query's candidates span the whole test set: c2f equals exhaustive scoring
    wide = evaluate_coarse_to_fine(model, heads, test, stub_loader(), 16, "cpu", small_c2f(candidates=1000))
    assert wide["metrics"] == pytest.approx(wide["exhaustive_metrics"]) and wide["timings"]["fine_pair_share"] == 1.0
    only = evaluate_coarse_to_fine(model, heads, test, stub_loader(), 16, "cpu", small_c2f(coarse_only=True, ppsr=False))
    assert only["metrics"] == pytest.approx(only["coarse_metrics"])


def test_fine_pair_share_counts_each_pair_once():
    cand_i2t = np.array([[0, 1], [1, 2]])  # [N=2, K=2] captions of each image
    cand_t2i = np.array([[0], [0], [1]])  # [C=3, K=1] images of each caption
    # pairs (image, caption): {(0,0),(0,1),(1,1),(1,2)} from i2t, {(0,0),(0,1),(1,2)} from t2i -> 4 of 6
    assert fine_pair_share(cand_i2t, cand_t2i, 2, 3) == pytest.approx(4 / 6)


def test_hamming_similarity_matrix_matches_hamming_distance():
    image_codes, text_codes, *_ = _random_setup(bits=24)
    d = hamming_distance(image_codes, text_codes)
    np.testing.assert_allclose(_unpacked_similarity(image_codes, text_codes, 24), 1 - 2 * d / 24)


def test_candidate_share_gives_the_same_k_each_way_from_the_image_count(cells):
    model, heads, test = cells["model"], cells["heads"], cells["test"]
    n, c = test.num_images, len(test.captions)
    assert candidate_count(49, 70, 0.064) == 4 and candidate_count(245, 70, 0.064) == 16
    assert candidate_count(49, 70) == 49 and candidate_count(1093, 70) == 70  # a count never exceeds the gallery
    result = evaluate_coarse_to_fine(model, heads, test, stub_loader(), 16, "cpu", small_c2f(candidate_share=0.25))
    k = math.ceil(0.25 * n)
    assert (result["candidates_t2i"], result["candidates_i2t"]) == (k, k)
    assert result["timings"]["fine_pairs"] == c * k + n * k
    assert 0.25 <= result["timings"]["fine_pair_share"] <= (c * k + n * k) / (n * c)


def test_a_custom_fine_scorer_plugs_into_the_evaluation(cells):
    """The fine stage is pluggable: an oracle scorer puts every shortlisted match first."""
    model, heads, test = cells["model"], cells["heads"], cells["test"]
    owner = np.asarray(test.caption_image)
    calls = []

    def oracle(model_, image_embs, text_embs):
        assert model_ is model and image_embs["global"].shape[0] == test.num_images

        def score(direction, queries, candidates):
            calls.append((direction, queries.shape, candidates.shape))
            if direction == "t2i":  # queries: captions, candidates: images
                return (owner[queries][:, None] == candidates).astype(np.float32)
            return (owner[candidates] == queries[:, None]).astype(np.float32)

        return score

    result = evaluate_coarse_to_fine(model, heads, test, stub_loader(), 16, "cpu", small_c2f(candidates=5, min_candidates=1), fine=oracle)
    n, c = test.num_images, len(test.captions)
    assert calls == [("t2i", (c,), (c, 5)), ("i2t", (n,), (n, 5))]
    # R@1 with the oracle = a match among the 5 coarse candidates = coarse R@5
    coarse = result["coarse_metrics"]
    assert (result["metrics"]["t2i_R1"], result["metrics"]["i2t_R1"]) == (coarse["t2i_R5"], coarse["i2t_R5"])
    default = evaluate_coarse_to_fine(model, heads, test, stub_loader(), 16, "cpu", small_c2f(candidates=5))
    assert default["metrics"]["t2i_R1"] <= result["metrics"]["t2i_R1"]


def test_options_come_from_the_c2f_params():
    params = small_c2f(candidates=12, candidate_share=0.1, ppsr=False, ppsr_k=4, coarse_only=True)
    options = CoarseToFineOptions.of(params)
    assert options == CoarseToFineOptions(candidates=12, candidate_share=0.1, ppsr=False, ppsr_k=4, coarse_only=True,
                                          min_candidates=10)
    assert CoarseToFineOptions.of(options) is options


def test_dual_shortlist_recall_is_the_exhaustive_rankings_share_within_k(cells):
    """The ceiling of any dual-stream shortlist at K: queries whose true match ranks < K exhaustively."""
    from rsitr.retrieval.evaluate import encode_split
    from rsitr.retrieval.metrics import i2t_ranks, t2i_ranks

    model, heads, test = cells["model"], cells["heads"], cells["test"]
    result = evaluate_coarse_to_fine(model, heads, test, stub_loader(), 16, "cpu", small_c2f(candidates=3, min_candidates=1))
    embeddings = encode_split(model, test, stub_loader(), 16, torch.device("cpu"))
    scores = model.score(embeddings[0], embeddings[1]).float().numpy()  # [N, C]
    k = result["candidates_t2i"]
    assert k == result["candidates_i2t"] == 3
    expected_i2t = 100.0 * float((i2t_ranks(scores, test.caption_image) < k).mean())
    expected_t2i = 100.0 * float((t2i_ranks(scores, test.caption_image) < k).mean())
    assert result["dual_shortlist_recall_i2t"] == pytest.approx(expected_i2t)
    assert result["dual_shortlist_recall_t2i"] == pytest.approx(expected_t2i)
