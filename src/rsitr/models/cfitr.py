"""CFITR on open_clip: dual-stream hashing module + single-stream re-scoring module.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024) is released on ViLT
(ZhWenQian/CFITR): ONE 12-block ViT whose first 6 blocks run on each modality alone (the
dual stream: pooled features -> hash heads -> Hamming shortlist) and whose last 6 blocks run
on the concatenation [text tokens ; image tokens] (the single stream: CLS -> pooler -> rank
head -> one score per pair). ``docs/methods.md`` (CFITR) gives the released details.

open_clip has two towers where ViLT has one. The faithful adaptation, choice by choice:

* dual stream = the whole CLIP image and text towers (ViLT's first 6 blocks on each
  modality alone); their pooled, L2-normalised embeddings are the global features, and
  the ``cfitr`` leaderboard row (``score``) is their cosine;
* hash heads: one ``HashHead`` per modality on those global embeddings (ViLT: on the
  dual-stream pooled features), trained WITH the model as released, not post hoc;
* single stream = a new ``FusionEncoder`` (``rsitr.models.fusion``) over the towers' token
  outputs: text tokens after ``ln_final`` and the text projection, image patch tokens after
  ``ln_post`` and the visual projection (both in the joint space ``D``), each projected to
  the fusion width, plus learned modality (type) embeddings as ViLT's token types;
  ViLT's last 6 blocks read the dual-stream tokens the same way;
* pooled position: a learned CLS token before the text (ViLT pools its text CLS, which has
  attended to the image in the fusion blocks; open_clip's first text token is a start-of-text
  token that a causal tower leaves image- and caption-blind, so a dedicated one is cleaner);
  then ViLT's pooler (Linear + tanh) and rank head (Linear -> 1);
* masks: padded text positions (after end-of-text) are masked as keys (ViLT's text mask);
  image tokens are all real (ViLT masks no patch at fine-tuning resolution);
* fusion initialisation (``fusion_init``): "fresh" (random, the default) or "tower": copies
  of the IMAGE tower's last ``fusion_layers`` blocks (ViLT's fusion blocks are its ViT's
  blocks; the image tower's are bidirectional where the text tower's were trained causal);
  needs ``fusion_width`` = the image tower's width;
* image tokens (``image_token_grid``): the patch grid average-pooled to g x g before fusion
  (rsitr option for CPU cost; 0 = every patch, as ViLT);
* negatives: ViLT draws ``draw_false_text`` = 15 random captions of other images from the
  dataset; here they are drawn from the batch (captions of the same image, i.e. the same
  mask id, excluded) with torch's global RNG, so the trainer's seeding and resume stay
  exact; ``negative_mining: hard`` takes the highest dual-cosine non-matching captions
  instead. A batch with fewer eligible captions than ``negatives`` uses as many as every row
  has.

The loss is ``rsitr.losses.cfitr.CfitrLoss``; ``forward`` returns every input it needs.
Evaluation: ``embed_images`` / ``embed_texts`` give "global", "hash" (continuous codes;
sign them for the coarse stage) and the fusion inputs; ``score`` is the dual cosine;
``pair_scores`` the SSM score of given (image, caption) index pairs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsitr.config import RsitrParams, VariantParams, method_options
from rsitr.config.cfitr import CfitrOptions
from rsitr.errors import ConfigError, ModelError
from rsitr.models.factory import ClipBundle
from rsitr.models.fusion import FusionEncoder
from rsitr.models.hash_heads import HashHead
from rsitr.models.retrieval_model import Features, RetrievalModel
from rsitr.models.text_tower import trim_padding


def _embed_dim(clip: nn.Module) -> int:
    projection = clip.text_projection
    return int(projection.out_features if isinstance(projection, nn.Linear) else projection.shape[-1])


def real_positions(tokens: torch.Tensor) -> torch.Tensor:
    """``[B, L]`` bool: positions up to and including each caption's end-of-text token (the largest id)."""
    eot = tokens.argmax(dim=-1)  # [B]
    return torch.arange(tokens.shape[1], device=tokens.device)[None, :] <= eot[:, None]


def pool_grid(patches: torch.Tensor, grid: int) -> torch.Tensor:
    """``[B, P, D] -> [B, g * g, D]``: the square patch grid average-pooled to ``grid`` x ``grid`` (0: unchanged)."""
    side = math.isqrt(patches.shape[1])
    if grid <= 0 or grid >= side or side * side != patches.shape[1]:
        return patches
    x = patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], side, side)  # [B, D, G, G]
    x = F.adaptive_avg_pool2d(x, grid)  # [B, D, g, g]
    return x.flatten(2).transpose(1, 2)  # [B, g * g, D]


def draw_negatives(image_ids: torch.Tensor, count: int, scores: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, k]`` caption indices of the batch, none of the row's own image; ``k <= count``.

    Random without replacement (torch's global RNG) or, given ``scores [B, B]`` (image x
    caption), the ``k`` highest-scoring ones. ``k`` is ``count`` capped by the fewest
    eligible captions of any row.
    """
    eligible = image_ids[:, None] != image_ids[None, :]  # [B, B] caption j is a negative of image i
    k = min(count, int(eligible.sum(dim=1).min().item())) if image_ids.numel() else 0
    keys = torch.rand(eligible.shape, device=image_ids.device) if scores is None else scores.detach().float()
    keys = keys.masked_fill(~eligible, float("-inf"))
    return keys.topk(k, dim=1).indices  # [B, k]


class CfitrModel(RetrievalModel):
    """open_clip dual encoder + hash heads (coarse) + single-stream fusion encoder (fine)."""

    def __init__(self, bundle: ClipBundle, variant: VariantParams, params: RsitrParams):
        super().__init__(bundle, variant, params)
        options = method_options(variant, CfitrOptions)
        self.options: CfitrOptions = options
        dim = _embed_dim(self.clip)
        self.image_hash = HashHead(dim, options.hash_hidden, options.hash_bits)
        self.text_hash = HashHead(dim, options.hash_hidden, options.hash_bits)
        self.fusion = FusionEncoder(dim, options.fusion_width, options.fusion_layers, options.fusion_heads,
                                    init_blocks=self._tower_blocks(variant))

    def _tower_blocks(self, variant: VariantParams) -> list[nn.Module] | None:
        options = self.options
        if options.fusion_init == "fresh":
            return None
        blocks = list(self.clip.visual.transformer.resblocks)
        width = int(self.clip.visual.transformer.width)
        if width != options.fusion_width or len(blocks) < options.fusion_layers:
            raise ConfigError(
                f"variant {variant.name}: fusion_init=tower needs fusion_width = the image tower's width ({width}) "
                f"and fusion_layers <= its {len(blocks)} blocks; set options.fusion_width={width} or fusion_init=fresh"
            )
        return blocks[-options.fusion_layers:]

    # ------------------------------------------------------------------ encoders
    def image_side(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised global ``[B, D]`` and fusion tokens ``[B, P', D]`` (patches pooled to the grid)."""
        pooled, patches = self.encode_image_tokens(images)  # [B, D], [B, P, D]
        return F.normalize(pooled, dim=-1), pool_grid(patches, self.options.image_token_grid)

    def text_side(self, tokens: torch.Tensor, trim: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised global ``[B, D]``, token features ``[B, L, D]`` and their real-position mask ``[B, L]``."""
        if trim:
            tokens = trim_padding(self.clip, tokens)  # [B, L'] exact for real positions (causal tower)
        pooled, features = self.encode_text_tokens(tokens)  # [B, D], [B, L, D]
        return F.normalize(pooled, dim=-1), features, real_positions(tokens)

    # ------------------------------------------------------------------ training
    def forward(self, images: torch.Tensor, tokens: torch.Tensor, image_ids: torch.Tensor | None = None,
                **batch: Any) -> Features:
        """Features for ``CfitrLoss``: globals, continuous hash codes, ``rank_logits [B, 1 + k]`` (column 0 matches)."""
        options = self.options
        image_global, image_tokens = self.image_side(images)  # [B, D], [B, P', D]
        text_global, text_tokens, text_real = self.text_side(tokens, trim=True)  # [B, D], [B, L, D], [B, L]
        b = image_global.shape[0]
        if image_ids is None:
            image_ids = torch.arange(b, device=image_global.device)  # every item its own image
        scores = image_global @ text_global.T if options.negative_mining == "hard" else None  # [B, B]
        negatives = draw_negatives(image_ids, options.negatives, scores)  # [B, k]
        captions = torch.cat([torch.arange(b, device=negatives.device)[:, None], negatives], dim=1)  # [B, 1 + k]
        pair_image = torch.arange(b, device=captions.device).repeat_interleave(captions.shape[1])  # [B (1 + k)]
        pair_text = captions.flatten()  # [B (1 + k)]
        logits = self.fusion(text_tokens[pair_text], text_real[pair_text], image_tokens[pair_image])  # [B (1 + k)]
        return {
            "image_features": image_global,  # [B, D]
            "text_features": text_global,  # [B, D]
            "logit_scale": self.logit_scale(),
            "image_codes": self.image_hash(image_global),  # [B, bits] in (-1, 1)
            "text_codes": self.text_hash(text_global),  # [B, bits]
            "rank_logits": logits.view(b, captions.shape[1]),  # [B, 1 + k]
            "negative_captions": negatives,  # [B, k] batch indices of the negatives
        }

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> Features:
        image_global, image_tokens = self.image_side(images)
        return {"global": image_global, "hash": self.image_hash(image_global), "tokens": image_tokens}

    @torch.no_grad()
    def embed_texts(self, tokens: torch.Tensor) -> Features:
        """Full-context token features (batches concatenate); ``pair_scores`` trims them per chunk."""
        text_global, features, real = self.text_side(tokens, trim=False)
        return {"global": text_global, "hash": self.text_hash(text_global), "tokens": features,
                "mask": real.to(features.dtype)}  # [C, D], [C, bits], [C, L, D], [C, L]

    @torch.no_grad()
    def score(self, image_embeddings: Features, text_embeddings: Features) -> torch.Tensor:
        """The dual stream: cosine of the global embeddings ``[N_img, N_txt]``."""
        return self.similarity(image_embeddings["global"], text_embeddings["global"])

    @torch.no_grad()
    def pair_scores(self, image_embeddings: Features, text_embeddings: Features, image_index: torch.Tensor,
                    text_index: torch.Tensor) -> torch.Tensor:
        """SSM scores ``[M]`` of the pairs (``image_index[m]``, ``text_index[m]``), in chunks of ``pair_chunk``."""
        image_index = torch.as_tensor(image_index, dtype=torch.long).flatten()
        text_index = torch.as_tensor(text_index, dtype=torch.long).flatten()
        if image_index.shape != text_index.shape:
            raise ValueError(f"image_index {tuple(image_index.shape)} and text_index {tuple(text_index.shape)} differ")
        device = self.device
        parts = []
        for start in range(0, image_index.numel(), self.options.pair_chunk):
            images = image_index[start: start + self.options.pair_chunk]
            texts = text_index[start: start + self.options.pair_chunk]
            real = text_embeddings["mask"][texts].bool()  # [m, L]
            length = int(real.sum(dim=1).max().item())  # real positions are a prefix
            text_tokens = text_embeddings["tokens"][:, :length][texts]  # [m, length, D]: gathers real columns only
            parts.append(self.fusion(
                text_tokens.to(device), real[:, :length].to(device),
                image_embeddings["tokens"][images].to(device),
            ).float().cpu())
        return torch.cat(parts) if parts else torch.zeros(0)

    # ------------------------------------------------------------------ bookkeeping
    def load_saved_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """A CFITR checkpoint, or a dual encoder's (``train.init_from`` a finetune ``best.pt``).

        A dual encoder's checkpoint lacks exactly the hash heads and the fusion encoder: they
        keep their fresh initialisation. Any other missing or unexpected key is an error.
        """
        own = ("image_hash.", "text_hash.", "fusion.")
        if any(key.startswith(own) for key in state):
            super().load_saved_state_dict(state)
            return
        missing, unexpected = self.load_state_dict(state, strict=False)
        wrong = [key for key in missing if not key.startswith(own)] + list(unexpected)
        if wrong:
            raise ModelError(f"checkpoint does not fit variant {self.variant.name}: keys {wrong[:5]} "
                             "(expected a cfitr checkpoint or a dual encoder of the same architecture)")

    def components(self) -> dict[str, nn.Module]:
        parts = super().components()
        parts.update({"hash_heads": nn.ModuleList([self.image_hash, self.text_hash]), "fusion": self.fusion})
        return parts
