"""EBAKER: global + local alignment, Eliminate Before Align, Keyword Explicit Reasoning.

EBAKER (Eliminate Before Align: A Remote Sensing Image-Text Retrieval Framework with
Keyword Explicit Reasoning, ACM MM 2024). A fully fine-tuned open_clip
CLIP (``backbone``) plus, when KER is on, a keyword-reasoning head (``ker_head``):

* global alignment: cosine of the pooled embeddings (CLS / EOT), as CLIP;
* local alignment (``options.local``): Frobenius norm of the token-pair cosine matrix
  between text tokens and image patches (``rsitr.models.local_alignment``): raw, over every
  context position, as the released code (paper-exact default, ``docs/methods.md``);
  ``local_normalize`` and ``text_positions="real"`` are rsitr options;
* inference score: ``global_weight * global + local_weight * local`` (0.6 / 0.4), the local
  part computed in ``eval_block_size`` x ``eval_block_size`` blocks;
* KER (``options.ker``): keyword pieces of each training caption are replaced by a learned
  mask embedding (``rsitr.models.keyword_masking``), the masked caption goes through the
  same text encoder, and ``rsitr.models.ker_head.KerHead`` predicts the masked tokens from
  it and the image tokens (CLS + patches);
* EBA (``options.eba``) lives in the loss (``rsitr.losses.ebaker``): it needs the pairs'
  global cosines only, which ``forward`` returns.

The temperature is fixed at ``options.temperature`` (0.05, logits x 20, as the released code)
unless ``options.learnable_temperature``. The keyword list is given with ``set_keywords``
(the application reads it from the keywords step's output), so the model builds
(``rsitr describe``) without one; a KER forward pass without keywords names the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsitr.config import RsitrParams, VariantParams
from rsitr.config.schema import EbakerOptions, method_options
from rsitr.models.factory import ClipBundle
from rsitr.models.ker_head import KerHead
from rsitr.errors import DataError
from rsitr.models.keyword_masking import KeywordMasker
from rsitr.models.local_alignment import FusedScoreOptions, fused_score, prepare_text_tokens, text_position_mask
from rsitr.models.retrieval_model import Features, RetrievalModel
from rsitr.models.text_tower import project_text, text_tower, trim_padding


def _embed_dim(clip: nn.Module) -> int:
    projection = clip.text_projection
    return int(projection.out_features if isinstance(projection, nn.Linear) else projection.shape[-1])


class EbakerModel(RetrievalModel):
    """CLIP + local alignment + KER head; the EBA strategy is in ``rsitr.losses.ebaker``."""

    def __init__(self, bundle: ClipBundle, variant: VariantParams, params: RsitrParams):
        super().__init__(bundle, variant, params)
        options = method_options(variant, EbakerOptions)
        self.options: EbakerOptions = options
        self.ker_head: KerHead | None = None
        if options.ker:
            token_embedding = self.clip.token_embedding
            self.ker_head = KerHead(
                _embed_dim(self.clip), token_embedding.num_embeddings, options.ker_layers, options.ker_heads,
                mask_width=token_embedding.embedding_dim,
            )
            with torch.no_grad():  # start the [mask] embedding at the mean token embedding
                self.ker_head.mask_embedding.copy_(token_embedding.weight.mean(dim=0))
        self._masker: KeywordMasker | None = None

    # ------------------------------------------------------------------ keywords
    def keyword_masker(self) -> KeywordMasker:
        """The caption -> keyword-mask function of the keywords given to ``set_keywords``."""
        if self._masker is None:
            raise DataError(
                f"variant {self.variant.name}: Keyword Explicit Reasoning needs the keyword list; run the keywords "
                "step first (`rsitr keywords`, or the benchmark flow), or switch KER off with "
                f"--set variants.{self.variant.name}.options.ker=false"
            )
        return self._masker

    def set_keywords(self, keywords: Sequence[str]) -> None:
        """The keyword list KER masks (``rsitr.models.keyword_masking.read_keywords`` reads the file)."""
        self._masker = KeywordMasker(self.tokenizer, keywords, self.context_length)

    # ------------------------------------------------------------------ encoders
    def encode_masked_text_tokens(self, tokens: torch.Tensor, keyword_mask: torch.Tensor) -> torch.Tensor:
        """Token features ``[B, L, D]`` of ``tokens [B, L]`` with the ``keyword_mask`` positions masked.

        The masked positions get the KER head's learned ``[mask]`` embedding instead of their
        token embedding; everything else is the (shared) CLIP text tower.
        """
        assert self.ker_head is not None
        clip = self.clip
        cast_dtype = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens).to(cast_dtype)  # [B, L, W]
        mask_embedding = self.ker_head.mask_embedding.to(cast_dtype)  # [W]
        x = torch.where(keyword_mask.unsqueeze(-1), mask_embedding, x)
        return project_text(clip, text_tower(clip, tokens, token_embeddings=x))  # [B, L, D]

    def _local_text(self, tokens: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = text_position_mask(tokens, self.options.text_positions)  # [B, L]
        return prepare_text_tokens(features, mask), mask

    # ------------------------------------------------------------------ training
    def forward(
        self,
        images: torch.Tensor,
        tokens: torch.Tensor,
        captions: Sequence[str] | None = None,
        **batch: Any,
    ) -> Features:
        """Features for ``EbakerLoss``; ``captions`` are needed for KER (keyword masking)."""
        options = self.options
        image_pooled, patches = self.encode_image_tokens(images)  # [B, D], [B, P, D]
        # Trailing padding is skipped unless the local score reads it (paper-exact: all positions)
        trim = not options.local or options.text_positions == "real"
        text_pooled, text_feats = self.encode_text_tokens(tokens, trim=trim)  # [B, D], [B, L, D]
        outputs: Features = {
            "image_features": F.normalize(image_pooled, dim=-1),  # [B, D]
            "text_features": F.normalize(text_pooled, dim=-1),  # [B, D]
            "logit_scale": self.logit_scale(),
        }
        if options.local:
            text_tokens, text_mask = self._local_text(tokens[:, : text_feats.shape[1]], text_feats)
            outputs.update({
                "image_tokens": F.normalize(patches, dim=-1),  # [B, P, D]
                "text_tokens": text_tokens,  # [B, L, D], zero outside text_mask
                "text_mask": text_mask,  # [B, L] bool
            })
        if self.ker_head is not None and captions is not None:
            keyword_mask = self.keyword_masker().mask_for(captions, tokens)  # [B, L] bool
            tokens = trim_padding(self.clip, tokens)  # [B, L'] KER reads real positions only (padding keys masked)
            keyword_mask = keyword_mask[:, : tokens.shape[1]]  # [B, L']
            masked = self.encode_masked_text_tokens(tokens, keyword_mask)  # [B, L', D]
            image_tokens = torch.cat([image_pooled.unsqueeze(1), patches], dim=1)  # [B, 1+P, D] CLS + patches
            eot = tokens.argmax(dim=-1)  # [B]
            padding = torch.arange(tokens.shape[1], device=tokens.device)[None, :] > eot[:, None]  # [B, L]
            outputs["mlm_logits"] = self.ker_head(masked, image_tokens, keyword_mask, padding)  # [M, V]
            outputs["mlm_targets"] = tokens[keyword_mask]  # [M]
        return outputs

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> Features:
        pooled, patches = self.encode_image_tokens(images)
        embeddings = {"global": F.normalize(pooled, dim=-1)}  # [N, D]
        if self.options.local:
            embeddings["tokens"] = F.normalize(patches, dim=-1)  # [N, P, D]
        return embeddings

    @torch.no_grad()
    def embed_texts(self, tokens: torch.Tensor) -> Features:
        pooled, features = self.encode_text_tokens(tokens)
        embeddings = {"global": F.normalize(pooled, dim=-1)}  # [C, D]
        if self.options.local:
            text_tokens, mask = self._local_text(tokens, features)
            embeddings["tokens"] = text_tokens  # [C, L, D]
            embeddings["mask"] = mask.to(text_tokens.dtype)  # [C, L]
        return embeddings

    @torch.no_grad()
    def score(self, image_embeddings: Features, text_embeddings: Features) -> torch.Tensor:
        """``[N_img, N_txt]``: 0.6 * global + 0.4 * local (blocked); global cosine with local off."""
        options = self.options
        if not options.local:
            return fused_score(image_embeddings["global"], text_embeddings["global"])
        return fused_score(
            image_embeddings["global"], text_embeddings["global"],
            image_embeddings["tokens"], text_embeddings["tokens"], text_embeddings["mask"],
            FusedScoreOptions(global_weight=options.global_weight, local_weight=options.local_weight,
                              block_size=options.eval_block_size, normalize=options.local_normalize),
        )

    # ------------------------------------------------------------------ bookkeeping
    def configure_trainable(self) -> None:
        """Full fine-tune (backbone and KER head); temperature fixed unless learnable_temperature."""
        super().configure_trainable()
        self.init_temperature(self.options.temperature, self.options.learnable_temperature)

    def components(self) -> dict[str, nn.Module]:
        parts: dict[str, nn.Module] = {"backbone": self.clip}
        if self.ker_head is not None:
            parts["ker_head"] = self.ker_head
        return parts
