"""Search of a gallery index with a model held in memory: one object per served model version.

``GallerySearcher`` is built once (the model loaded, the coarse index built or loaded) and then
answers queries from any number of threads (FAISS searches and torch inference in eval mode
do not mutate shared state). Two stages:

* **coarse**: ``hnsw`` / ``ivf`` / ``exact`` over the gallery's global float embeddings
  (``rsitr.retrieval.coarse_index``; HNSW is the served default, benchmarks/bench_search_results.md), or
  ``hash``: the CFITR codes of the model's hash heads with single-query PPSR
  (``rsitr.retrieval.hamming_search.ppsr_candidates``), or of the model's own ``"hash"``
  embeddings (cfitr: heads trained with the model; no PPSR reference sets, so no PPSR);
  returns ``candidates`` items.
* **fine**: ``model``: the variant's own scorer (``model.score``: EBAKER global + local, else
  cosine) for text queries; ``ssm``: the single-stream module of a model with
  ``pair_scores`` (cfitr) on each (candidate image, query caption) pair; ``dense``: cosine
  of the global embeddings; ``none``: the coarse score. Image queries are image -> image
  (the index holds images only) and are re-scored by the cosine of the global embeddings
  under ``model``, ``ssm`` and ``dense``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsitr.config.schema import ServeParams
from rsitr.data.images import ImageLoader
from rsitr.errors import ConfigError, ModelError, unknown_name
from rsitr.retrieval.coarse_index import META_FILE, load_coarse_index, make_coarse_index
from rsitr.retrieval.hamming_search import ppsr_candidates
from rsitr.retrieval.binary_codes import pack_codes
from rsitr.retrieval.rescore import fine_rescore, has_pair_scores

FLOAT_COARSE = ("hnsw", "ivf", "exact")
COARSE_STAGES = (*FLOAT_COARSE, "hash")
FINE_STAGES = ("model", "dense", "ssm", "none")
_SERVE = ServeParams()

__all__ = ["COARSE_STAGES", "FINE_STAGES", "GallerySearcher", "SearchOptions", "build_float_coarse",
           "check_fine_stage"]


def check_fine_stage(fine: str, model: Any, name: str = "this model") -> None:
    """One clear error when ``fine`` cannot run on ``model`` (``ssm`` needs ``pair_scores``)."""
    if fine == "ssm" and not has_pair_scores(model):
        valid = [f for f in FINE_STAGES if f != "ssm"]
        raise ConfigError(f"serve.fine: 'ssm' needs a model with a single-stream module (pair_scores, e.g. cfitr); "
                          f"{name} has none: use one of {', '.join(valid)}")


def normalized_rows(array: Any) -> np.ndarray:
    """``float32 [N, D]`` rows scaled to unit length (float16 memmaps are read in full)."""
    x = np.asarray(array, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def build_float_coarse(kind: str, embeddings: Any, options: dict[str, Any] | None = None) -> Any:
    """A float coarse index of ``kind`` over ``[N, D]`` gallery embeddings (normalised here)."""
    if kind not in FLOAT_COARSE:
        raise ConfigError(unknown_name("float coarse stage", kind, FLOAT_COARSE))
    return make_coarse_index(kind, **(options or {})).build(normalized_rows(embeddings))


@dataclass(frozen=True)
class SearchOptions:
    """The two stages of a ``GallerySearcher`` (see the module doc); names are checked here.

    ``coarse_options``: keywords of the float coarse index (``m``, ``ef_search``, ``nprobe``,
    ``threads``...); ``coarse_dir``: where a saved float coarse index may be loaded from;
    ``use_ppsr``: PPSR in the ``hash`` coarse stage. Defaults are the schema's (``ServeParams``).
    """

    coarse: str = _SERVE.coarse
    fine: str = _SERVE.fine
    candidates: int = _SERVE.candidates
    coarse_options: Mapping[str, Any] | None = None
    coarse_dir: str | Path | None = None
    use_ppsr: bool = True

    def __post_init__(self) -> None:
        if self.coarse not in COARSE_STAGES:
            raise ConfigError(unknown_name("coarse stage", self.coarse, COARSE_STAGES))
        if self.fine not in FINE_STAGES:
            raise ConfigError(unknown_name("fine stage", self.fine, FINE_STAGES))


class GallerySearcher:
    """Coarse-to-fine search of one ``GalleryIndex`` with one in-memory model."""

    def __init__(self, index: Any, model: Any, *, heads: Any = None, options: SearchOptions = SearchOptions(),
                 device: torch.device | str = "cpu"):
        check_fine_stage(options.fine, model, type(model).__name__)
        self.index, self.model, self.heads = index, model.eval(), heads
        self.coarse_kind, self.fine, self.candidates = options.coarse, options.fine, int(options.candidates)
        self.device = torch.device(device)
        self.use_ppsr = options.use_ppsr
        self.loader = ImageLoader.for_model(model, cache=False)
        self.coarse = self._coarse_index(options)

    def _coarse_index(self, options: SearchOptions) -> Any:
        """The Hamming index of the codes (``hash``), or the float index: loaded when saved and matching, else built."""
        index, coarse = self.index, options.coarse
        if coarse == "hash":
            if not index.has_codes:
                raise ModelError("coarse stage 'hash' needs hash heads in the model and codes in the index; this "
                                 f"model/index has none: use one of {', '.join(FLOAT_COARSE)} (serve.coarse)")
            return index.hamming
        coarse_options = dict(options.coarse_options) if options.coarse_options else None
        saved = Path(options.coarse_dir) if options.coarse_dir is not None else None
        if saved is not None and (saved / META_FILE).is_file():
            found = load_coarse_index(saved)
            if found.kind != coarse or found.ntotal != len(index):
                found = build_float_coarse(coarse, index.embeddings["global"], coarse_options)
        else:
            found = build_float_coarse(coarse, index.embeddings["global"], coarse_options)
        if coarse_options and "threads" in coarse_options:
            found.threads = coarse_options["threads"]
        return found

    def __len__(self) -> int:
        return len(self.index)

    @torch.no_grad()
    def embed_text(self, text: str) -> dict[str, torch.Tensor]:
        tokens = self.model.tokenize([text]).to(self.device)
        return {k: v.float() for k, v in self.model.embed_texts(tokens).items()}  # [1, ...]

    @torch.no_grad()
    def embed_image(self, source: Any) -> dict[str, torch.Tensor]:
        """``source``: a path or a binary file object (an upload); raises on undecodable bytes."""
        pixels = self.loader.normalize(self.loader.uint8(source))[None].to(self.device)  # [1, 3, S, S]
        return {k: v.float() for k, v in self.model.embed_images(pixels).items()}

    def search_text(self, text: str, top_k: int = 10) -> dict[str, Any]:
        t0 = time.perf_counter()
        query = self.embed_text(text)
        return self._search(query, "text", text, top_k, t0)

    def search_image(self, source: Any, top_k: int = 10, label: str = "upload") -> dict[str, Any]:
        t0 = time.perf_counter()
        query = self.embed_image(source)
        return self._search(query, "image", label, top_k, t0)

    def _coarse(self, query: dict[str, torch.Tensor], mode: str, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids int64 [K], coarse scores float32 [K])`` of one query."""
        if self.coarse_kind == "hash":
            codes = self._query_codes(query, mode)  # [1, bits / 8]
            hub = self.index.hubness.get(mode) if self.use_ppsr else None
            found = ppsr_candidates(self.coarse, codes, width, hubness=hub,
                                    ppsr_k=int(self.index.manifest.get("ppsr_k", 10)))
            return found["indices"][0], found["adjusted"][0]
        q = normalized_rows(query["global"].cpu().numpy())  # [1, D]
        scores, ids = self.coarse.search(q, width)  # [1, K]
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def _query_codes(self, query: dict[str, torch.Tensor], mode: str) -> np.ndarray:
        """Packed codes ``[1, bits / 8]`` of a query: the hash heads', else the model's own ``"hash"``."""
        if self.heads is not None:
            return self.heads.pack(mode, query["global"])
        if "hash" not in query:
            raise ModelError("coarse stage 'hash': the index has codes but this model has neither hash heads nor its "
                             f"own hash codes: use one of {', '.join(FLOAT_COARSE)} (serve.coarse)")
        return pack_codes(query["hash"].float().cpu())

    @torch.no_grad()
    def _ssm(self, query: dict[str, torch.Tensor], idx: np.ndarray) -> np.ndarray:
        """``float32 [K]``: the single-stream score of each candidate image with the query caption."""
        order = np.argsort(idx, kind="stable")  # sorted reads of the memmaps
        subset = {k: torch.from_numpy(np.asarray(v[idx[order]], dtype=np.float32)) for k, v in self.index.embeddings.items()}
        count = len(idx)
        scores = self.model.pair_scores(subset, query, torch.arange(count), torch.zeros(count, dtype=torch.long))  # [K]
        final = np.empty(count, np.float32)
        final[order] = scores.float().cpu().numpy()
        return final

    def _search(self, query: dict[str, torch.Tensor], mode: str, label: str, top_k: int, t0: float) -> dict[str, Any]:
        t1 = time.perf_counter()
        idx, coarse = self._coarse(query, mode, min(len(self.index), max(self.candidates, top_k)))
        t2 = time.perf_counter()
        if self.fine == "none":
            final = coarse.astype(np.float32)
        elif self.fine == "ssm" and mode == "text":
            final = self._ssm(query, idx)
        elif self.fine == "model" and mode == "text":
            final = fine_rescore(self.model.score, self.index.embeddings, query, idx, gallery_is_image=True,
                                 device=self.device)
        else:
            gallery = normalized_rows(self.index.embeddings["global"][np.sort(idx)])  # sorted reads of the memmap
            gallery = gallery[np.searchsorted(np.sort(idx), idx)]  # back to idx order, [K, D]
            final = (gallery @ normalized_rows(query["global"].cpu().numpy())[0]).astype(np.float32)  # [K]
        order = np.lexsort((idx, -final))[:top_k]  # score desc, then gallery index asc
        t3 = time.perf_counter()
        results = [{"rank": r + 1, "id": self.index.ids[idx[j]], "score": float(final[j]),
                    "coarse": float(coarse[j])} for r, j in enumerate(order)]
        ms = lambda s: round(1000.0 * s, 3)  # noqa: E731
        return {"query": label, "mode": "text -> image" if mode == "text" else "image -> image",
                "results": results, "candidates": int(idx.shape[0]), "coarse": self.coarse_kind, "fine": self.fine,
                "timings_ms": {"encode": ms(t1 - t0), "coarse": ms(t2 - t1), "fine": ms(t3 - t2),
                               "total": ms(t3 - t0)}}
