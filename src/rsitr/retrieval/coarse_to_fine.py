"""Coarse-to-fine retrieval as an evaluation mode, and the training of its hash heads.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024, doi:10.1109/LGRS.2024.3494543):

* **Heads.** ``train_hash_heads`` encodes the train split once with a trained variant
  (frozen) and fits the two hash heads on the global embeddings (``hash_head.py``).
  The application saves them beside the checkpoint (``rsitr.app.steps.c2f``), with the
  packed codes of the training captions and images (the PPSR reference sets of online
  search) and the sha256 of the checkpoint they belong to.
* **Evaluation.** ``evaluate_coarse_to_fine`` encodes the test split, computes the
  Hamming similarity matrix of the codes (``1 - 2 d / bits``, ``[N_img, N_txt]``),
  optionally applies PPSR to the whole matrix (row and column top-k means, as CFITR
  does on its test set), and for each query in each direction re-scores only its top-K
  candidates with a fine scorer (``rsitr.retrieval.rescore.FineScorer``; by default
  ``ModelRescorer``, the variant's full scorer ``model.score``: EBAKER global + local, else
  cosine). Candidates rank above every other item, which keep their coarse order.
  It returns the seven protocol numbers of the coarse-to-fine ranking, plus those of the
  coarse stage alone and of exhaustive fine scoring, and timings.

Options come from ``params.c2f`` as a ``CoarseToFineOptions``. Another fine stage (e.g. a
single-stream re-scorer) is a ``FineScorerFactory`` passed as ``evaluate_coarse_to_fine(...,
fine=...)``; the coarse stage, PPSR, candidate selection and the metrics stay as they are.

Paper vs released code and rsitr's defaults: docs/methods.md (CFITR).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from rsitr.config.schema import CoarseToFineParams
from rsitr.data.images import EvalImages
from rsitr.retrieval.binary_codes import hamming_distance
from rsitr.retrieval.c2f_measures import coarse_report, sampled_exhaustive, shortlist_recall
from rsitr.retrieval.codes import Coder, SimHashCoder, as_coder
from rsitr.retrieval.evaluate import encode_split
from rsitr.retrieval.hamming_search import hamming_similarity, stable_topk
from rsitr.retrieval.hash_head import HashHeads, fit_hash_heads
from rsitr.retrieval.metrics import i2t_ranks, recall_at_k, retrieval_metrics, t2i_ranks
from rsitr.retrieval.ppsr import ppsr as ppsr_rescore
from rsitr.retrieval.ranks import QueryRanks
from rsitr.retrieval.rescore import (FineScorer, FineScorerFactory, ModelRescorer, PairRescorer, has_pair_scores,
                                    synchronize)

__all__ = [
    "CoarseToFineOptions",
    "coarse_to_fine_matrices",
    "evaluate_coarse_to_fine",
    "metrics_from_matrices",
    "train_hash_heads",
]

Embeddings = dict[str, torch.Tensor]
_DEFAULTS = CoarseToFineParams()


def _c2f(params: Any) -> Any:
    """The ``c2f`` section from ``RsitrParams`` or a ``CoarseToFineParams`` itself."""
    return getattr(params, "c2f", params)


@dataclass(frozen=True)
class CoarseToFineOptions:
    """What a coarse-to-fine evaluation does (``CoarseToFineOptions.of(params.c2f)``).

    ``candidates`` per query (or ``candidate_share`` of its gallery when > 0), PPSR on the
    coarse matrix with neighbourhood ``ppsr_k``, ``coarse_only`` (no fine stage) and
    ``exhaustive`` (also score every pair, the reference c2f approximates). Defaults are
    the schema's (``CoarseToFineParams``).
    """

    candidates: int = _DEFAULTS.candidates
    candidate_share: float = _DEFAULTS.candidate_share
    ppsr: bool = _DEFAULTS.ppsr
    ppsr_k: int = _DEFAULTS.ppsr_k
    coarse_only: bool = _DEFAULTS.coarse_only
    exhaustive: bool = True
    min_candidates: int = 1  # options built by hand: K exactly as asked; ``of(params)``: c2f.min_candidates (10)
    simhash_seed: int = _DEFAULTS.simhash_seed
    exhaustive_sample: tuple[int, int] = _DEFAULTS.exhaustive_sample

    @classmethod
    def of(cls, params: Any) -> "CoarseToFineOptions":
        """From ``RsitrParams``, its ``CoarseToFineParams`` section, or options already."""
        if isinstance(params, cls):
            return params
        c2f = _c2f(params)
        return cls(candidates=c2f.candidates, candidate_share=c2f.candidate_share, ppsr=c2f.ppsr, ppsr_k=c2f.ppsr_k,
                   coarse_only=c2f.coarse_only, min_candidates=c2f.min_candidates, simhash_seed=c2f.simhash_seed,
                   exhaustive_sample=tuple(c2f.exhaustive_sample))

    def shortlist(self, gallery: int) -> int:
        """K per query for a test set of ``gallery`` images (``candidate_count`` with ``min_candidates``).

        As CFITR (top 70 per query in each direction on RSICD's 1,093 images), both directions
        re-score the same K: a share of the IMAGES, so an image query sees K of its 5N captions."""
        return candidate_count(gallery, self.candidates, self.candidate_share, self.min_candidates)

    def caption_shortlist(self, images: int, captions: int) -> int:
        """K of an image query: the same K as a caption query, or every caption when K covers every image."""
        k = self.shortlist(images)
        return captions if k >= images else min(k, captions)


# ----------------------------------------------------------------------------- encoding


@torch.no_grad()
def encode_globals(
    model: Any, split: Any, loader: Any, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global embeddings only (no token features kept): images ``[N, D]``, captions ``[C, D]`` on CPU."""
    model.eval()
    images = DataLoader(EvalImages(split.image_paths, loader), batch_size=batch_size, shuffle=False)
    image_parts = [model.embed_images(batch.to(device))["global"].float().cpu() for batch in images]
    text_parts = [
        model.embed_texts(model.tokenize(split.captions[i : i + batch_size]).to(device))["global"].float().cpu()
        for i in range(0, len(split.captions), batch_size)
    ]
    return torch.cat(image_parts), torch.cat(text_parts)


# ----------------------------------------------------------------------------- training


def train_hash_heads(
    model: Any, split: Any, loader: Any, params: Any, device: torch.device | str
) -> tuple[HashHeads, list[dict[str, float]]]:
    """Fit CFITR hash heads on the frozen ``model``'s embeddings of ``split`` (the train split).

    Args:
        params: ``RsitrParams`` (uses ``c2f``, ``seed``, ``eval.batch_size``) or a
            ``CoarseToFineParams``.

    Returns:
        ``(heads, history)``: heads in eval mode on CPU, with ``reference_codes`` set to the
        packed codes of the split's captions (``"text"``) and images (``"image"``); history
        holds the per-epoch means of the loss terms.
    """
    device = torch.device(device)
    c2f = _c2f(params)
    seed = int(getattr(params, "seed", 0))
    encode_batch = int(getattr(getattr(params, "eval", None), "batch_size", 256))
    image_features, text_features = encode_globals(model, split, loader, encode_batch, device)
    heads, history = fit_hash_heads(
        image_features, text_features, split.caption_image, c2f, device=device, seed=seed
    )
    heads.reference_codes = {"text": heads.pack("text", text_features), "image": heads.pack("image", image_features)}
    return heads, history


def coarse_to_fine_matrices(
    image_codes: np.ndarray,
    text_codes: np.ndarray,
    options: CoarseToFineOptions,
    *,
    fine: FineScorer | None = None,
) -> dict[str, Any]:
    """The coarse-to-fine ranking matrices of a test set, one per direction.

    Args:
        image_codes, text_codes: packed codes ``uint8 [N, B]`` / ``[C, B]``.
        options: candidates, PPSR, ``coarse_only`` (``exhaustive`` is not used here).
        fine: scores each query's candidates (e.g. ``ModelRescorer(model.score, image_embs,
            text_embs)``); ``None`` (or ``options.coarse_only``): the coarse ranking alone.

    Returns:
        ``{"i2t": [N, C] float64 (rank captions along rows), "t2i": [N, C] float64 (rank
        images along columns), "coarse": [N, C] (PPSR-adjusted when ``ppsr``),
        "candidates_i2t": [N, K], "candidates_t2i": [C, K], "timings": {...}}``. In both
        matrices every candidate of a query scores above every non-candidate; candidates
        are ordered by the fine score, the rest by the coarse score.
    """
    timings: dict[str, float] = {}
    coarse = _coarse_matrix(image_codes, text_codes, options, timings)  # [N, C]
    cand_i2t, cand_t2i = _select_candidates(coarse, options, timings)  # [N, K], [C, K]
    result: dict[str, Any] = {"coarse": coarse, "candidates_i2t": cand_i2t, "candidates_t2i": cand_t2i}
    if options.coarse_only or fine is None:
        timings["fine_s"] = 0.0
        timings["fine_pairs"] = 0
        result.update(i2t=coarse, t2i=coarse, timings=timings)
        return result
    start = time.perf_counter()
    fine_i2t, fine_t2i = _fine_matrices(fine, cand_i2t, cand_t2i)  # [N, C] each, NaN off the candidates
    timings["fine_s"] = time.perf_counter() - start
    timings["fine_pairs"] = int(cand_t2i.size + cand_i2t.size)
    timings["fine_pair_share"] = fine_pair_share(cand_i2t, cand_t2i, *coarse.shape)
    result["i2t"] = _two_tier(fine_i2t, coarse)
    result["t2i"] = _two_tier(fine_t2i, coarse)
    result["timings"] = timings
    return result


def _coarse_matrix(
    image_codes: np.ndarray, text_codes: np.ndarray, options: CoarseToFineOptions, timings: dict[str, float]
) -> np.ndarray:
    """Hamming similarity ``float64 [N, C]`` of the codes, PPSR-adjusted when ``options.ppsr``."""
    bits = 8 * image_codes.shape[1]
    start = time.perf_counter()
    coarse = hamming_similarity(hamming_distance(image_codes, text_codes), bits).astype(np.float64)  # [N, C]
    timings["coarse_s"] = time.perf_counter() - start
    start = time.perf_counter()
    if options.ppsr:
        coarse = ppsr_rescore(coarse, k=options.ppsr_k)  # [N, C]
    timings["ppsr_s"] = time.perf_counter() - start
    return coarse


def _select_candidates(
    coarse: np.ndarray, options: CoarseToFineOptions, timings: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """``(cand_i2t [N, K] captions of each image, cand_t2i [C, K] images of each caption)`` by coarse score."""
    n_images, n_captions = coarse.shape
    start = time.perf_counter()
    cand_t2i = stable_topk(coarse.T, options.shortlist(n_images))  # [C, K]
    cand_i2t = stable_topk(coarse, options.caption_shortlist(n_images, n_captions))  # [N, K]: the same K each way
    timings["select_s"] = time.perf_counter() - start
    return cand_i2t, cand_t2i


def _fine_matrices(fine: FineScorer, cand_i2t: np.ndarray, cand_t2i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fine scores placed in ``[N, C]`` matrices (NaN where a pair is not a candidate): ``(i2t, t2i)``."""
    n_images, n_captions = cand_i2t.shape[0], cand_t2i.shape[0]
    fine_t2i = np.full((n_images, n_captions), np.nan)  # [N, C]
    fine_i2t = np.full((n_images, n_captions), np.nan)
    captions, images = np.arange(n_captions), np.arange(n_images)
    fine_t2i[cand_t2i, captions[:, None]] = fine("t2i", captions, cand_t2i)  # [C, K] scores of each caption's images
    fine_i2t[images[:, None], cand_i2t] = fine("i2t", images, cand_i2t)  # [N, K] scores of each image's captions
    return fine_i2t, fine_t2i


def candidate_count(gallery: int, candidates: int, share: float = 0.0, minimum: int = 1) -> int:
    """Candidates K a query re-scores in a gallery of ``gallery`` items.

    ``max(minimum, ceil(share x gallery))`` (or ``candidates`` when ``share`` is 0), capped by
    the gallery; ``minimum`` is ``c2f.min_candidates`` (10: t2i R@10 reachable).
    """
    count = math.ceil(share * gallery) if share > 0 else candidates
    return max(1, min(max(count, minimum), gallery))


def fine_pair_share(cand_i2t: np.ndarray, cand_t2i: np.ndarray, n_images: int, n_captions: int) -> float:
    """Share of the ``N x C`` image-caption pairs the fine scorer sees (either direction's candidate)."""
    scored = np.zeros((n_images, n_captions), dtype=bool)  # [N, C]
    scored[cand_t2i, np.arange(n_captions)[:, None]] = True  # cand_t2i [C, K]: images of each caption
    scored[np.arange(n_images)[:, None], cand_i2t] = True  # cand_i2t [N, K]: captions of each image
    return float(scored.mean())


def _two_tier(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Candidates (finite ``fine``) shifted above the largest coarse score; others keep ``coarse``."""
    mask = np.isfinite(fine)
    shift = float(coarse.max()) - float(np.nanmin(fine)) + 1.0
    return np.where(mask, fine + shift, coarse)


def metrics_from_matrices(i2t: np.ndarray, t2i: np.ndarray, caption_image: np.ndarray, ks=(1, 5, 10)) -> dict[str, float]:
    """The seven protocol numbers, i2t ranks from ``i2t`` and t2i ranks from ``t2i`` (``[N, C]``)."""
    image_ranks = i2t_ranks(i2t, caption_image)  # [N]
    caption_ranks = t2i_ranks(t2i, caption_image)  # [C]
    result = {f"i2t_R{k}": recall_at_k(image_ranks, k) for k in ks}
    result.update({f"t2i_R{k}": recall_at_k(caption_ranks, k) for k in ks})
    result["mR"] = float(np.mean(list(result.values())))
    return result


@torch.no_grad()
def evaluate_coarse_to_fine(
    model: Any,
    hash_heads: Any,
    split: Any,
    loader: Any,
    batch_size: int,
    device: torch.device | str,
    c2f_params: Any,
    *,
    fine: FineScorerFactory | None = None,
) -> dict[str, Any]:
    """Coarse-to-fine evaluation of one split; same metric keys as ``evaluate_split``.

    Args:
        hash_heads: where the codes come from (``rsitr.retrieval.codes.as_coder``): fitted
            ``HashHeads``, a ``Coder`` (simhash, sign, the model's own), or ``None`` (the
            model's own ``"hash"`` embeddings).
        c2f_params: ``CoarseToFineOptions``, or the ``CoarseToFineParams`` / ``RsitrParams``
            it is made from (``CoarseToFineOptions.of``). With ``exhaustive`` (default) every
            pair is also scored with ``model.score`` (``exhaustive_metrics`` and its time), and
            a model with ``pair_scores`` gets the sampled exhaustive SSM (``exhaustive_ssm``).
        fine: builds the fine scorer from ``(model, image_embs, text_embs)``; default the
            SSM (``PairRescorer``) of a model with ``pair_scores``, else ``model.score``.

    Returns:
        ``{"metrics": {i2t_R1..mR}, "ranks": QueryRanks (of the c2f ranking), "coarse_metrics",
        "shortlist_recall_i2t" / "_t2i" (percent), "fine_share", "codes", "bits", "fine_stage",
        "simhash" (coarse mR and shortlist recall of SimHash at the same bits and K),
        "dual_metrics" (the same candidates re-scored by ``model.score``; SSM models only),
        "exhaustive_metrics", "dual_shortlist_recall_i2t" / "_t2i" (share of queries whose true match is in
        the top K of the exhaustive ``model.score`` ranking: what any shortlist from this model's dual stream
        can reach at this K), "exhaustive_ssm" (when asked), "timings", "images", "captions",
        "candidates", "ppsr", "coarse_only"}``.
    """
    device = torch.device(device)
    options = CoarseToFineOptions.of(c2f_params)
    image_embs, text_embs, timings = encode_split(model, split, loader, batch_size, device)
    coder = as_coder(hash_heads.to(device).eval() if isinstance(hash_heads, torch.nn.Module) else hash_heads)
    image_codes, text_codes = _hash(coder, image_embs, text_embs, timings)
    factory = fine or (PairRescorer.for_model if has_pair_scores(model) else ModelRescorer.for_model)
    scorer = None if options.coarse_only else factory(model, image_embs, text_embs)
    ranking = coarse_to_fine_matrices(image_codes, text_codes, options, fine=scorer)
    timings.update(ranking["timings"])
    result = _evaluation(ranking, split, options)
    bits = coder.bits_of(image_embs)
    result.update(codes=coder.kind, bits=bits, fine_stage=_stage_name(scorer),
                  simhash=_simhash_baseline(image_embs, text_embs, split, options, bits))
    if isinstance(scorer, PairRescorer):
        result["dual_metrics"] = _rerank_metrics(ModelRescorer.for_model(model, image_embs, text_embs), ranking,
                                                 split, timings)
    queries = split.num_images + len(split.captions)
    _add_search_timings(timings, queries)
    if options.exhaustive:
        result.update(_exhaustive(model, image_embs, text_embs, split, options, timings))
    result["timings"] = timings
    return result


def _stage_name(scorer: Any) -> str:
    if scorer is None:
        return "none"
    return "ssm" if isinstance(scorer, PairRescorer) else "model"


def _exhaustive(model: Any, image_embs: Embeddings, text_embs: Embeddings, split: Any,
                options: CoarseToFineOptions, timings: dict[str, float]) -> dict[str, Any]:
    """Every pair by ``model.score``, and (``pair_scores`` models) the sampled exhaustive SSM."""
    device = image_embs["global"].device
    queries = split.num_images + len(split.captions)
    start = time.perf_counter()
    scores = model.score(image_embs, text_embs)  # [N, C]
    synchronize(device)
    timings["exhaustive_scoring_s"] = time.perf_counter() - start
    timings["exhaustive_ms_per_query"] = 1000.0 * timings["exhaustive_scoring_s"] / queries
    matrix = scores.float().cpu().numpy()  # [N, C]
    out: dict[str, Any] = {"exhaustive_metrics": retrieval_metrics(matrix, split.caption_image)}
    cand_i2t, cand_t2i = _select_candidates(matrix, options, {})  # the exhaustive dual ranking's own top K
    ceiling = shortlist_recall(cand_i2t, cand_t2i, np.asarray(split.caption_image))
    out.update({f"dual_shortlist_recall_{d}": v for d, v in ceiling.items()})  # the ceiling of any dual shortlist
    if has_pair_scores(model):
        pairs = PairRescorer.for_model(model, image_embs, text_embs)
        out["exhaustive_ssm"] = sampled_exhaustive(pairs.score_pairs, np.asarray(split.caption_image),
                                                   split.num_images, options.exhaustive_sample,
                                                   seed=options.simhash_seed)
    return out


def _rerank_metrics(fine: FineScorer, ranking: dict[str, Any], split: Any, timings: dict[str, float]) -> dict[str, float]:
    """The seven numbers of the same candidates re-scored by another ``fine`` (e.g. the dual cosine)."""
    start = time.perf_counter()
    fine_i2t, fine_t2i = _fine_matrices(fine, ranking["candidates_i2t"], ranking["candidates_t2i"])  # [N, C] each
    timings["dual_fine_s"] = time.perf_counter() - start
    coarse = ranking["coarse"]
    return metrics_from_matrices(_two_tier(fine_i2t, coarse), _two_tier(fine_t2i, coarse), split.caption_image)


def _simhash_baseline(image_embs: Embeddings, text_embs: Embeddings, split: Any, options: CoarseToFineOptions,
                      bits: int) -> dict[str, Any]:
    """Coarse mR and shortlist recall of SimHash codes at ``bits`` (seed ``simhash_seed``), same K and PPSR."""
    coder = SimHashCoder(bits, options.simhash_seed)
    coarse = _coarse_matrix(coder.codes("image", image_embs), coder.codes("text", text_embs), options, {})
    cand_i2t, cand_t2i = _select_candidates(coarse, options, {})
    return coarse_report(coarse, cand_i2t, cand_t2i, np.asarray(split.caption_image), bits=bits,
                         seed=options.simhash_seed)


def _hash(coder: Coder, image_embs: Embeddings, text_embs: Embeddings, timings: dict[str, float]
          ) -> tuple[np.ndarray, np.ndarray]:
    """Packed codes of the test set: images ``[N, B]``, captions ``[C, B]``."""
    start = time.perf_counter()
    image_codes = coder.codes("image", image_embs)  # [N, B]
    text_codes = coder.codes("text", text_embs)  # [C, B]
    timings["hash_s"] = time.perf_counter() - start
    return image_codes, text_codes


def _evaluation(ranking: dict[str, Any], split: Any, options: CoarseToFineOptions) -> dict[str, Any]:
    """Metrics and ranks of the c2f ranking, coarse metrics, and what was evaluated."""
    owner = split.caption_image
    recall = shortlist_recall(ranking["candidates_i2t"], ranking["candidates_t2i"], np.asarray(owner))
    ranks = QueryRanks(i2t=i2t_ranks(ranking["i2t"], owner), t2i=t2i_ranks(ranking["t2i"], owner),  # [N], [C]
                       caption_image=np.asarray(owner, dtype=np.int64), images=tuple(str(i) for i in split.image_ids))
    return {
        "metrics": ranks.metrics(),  # = metrics_from_matrices(ranking["i2t"], ranking["t2i"], owner)
        "ranks": ranks,
        "coarse_metrics": retrieval_metrics(ranking["coarse"], owner),
        "images": split.num_images,
        "captions": len(split.captions),
        "candidates": int(options.candidates),
        "candidates_t2i": options.shortlist(split.num_images),
        "candidates_i2t": options.caption_shortlist(split.num_images, len(split.captions)),
        "fine_share": fine_pair_share(ranking["candidates_i2t"], ranking["candidates_t2i"], *ranking["coarse"].shape),
        **{f"shortlist_recall_{d}": v for d, v in recall.items()},
        "ppsr": bool(options.ppsr),
        "coarse_only": bool(options.coarse_only),
    }


def _add_search_timings(timings: dict[str, float], queries: int) -> None:
    timings["search_s"] = sum(timings[k] for k in ("coarse_s", "ppsr_s", "select_s", "fine_s"))
    timings["search_ms_per_query"] = 1000.0 * timings["search_s"] / queries
    timings["total_s"] = timings["image_encode_s"] + timings["text_encode_s"] + timings["hash_s"] + timings["search_s"]
