"""The CLIP dual-encoder retrieval model (Radford et al. 2021) every rsitr variant builds on.

Contract, as open_clip's ``output_dict=True``: ``forward`` returns a dict of features
(``image_features``, ``text_features`` L2-normalised, ``logit_scale``); losses take that
dict. Evaluation goes through ``embed_images`` / ``embed_texts`` (dicts of tensors a
variant may extend, e.g. with token features) and ``score``, so a variant with its own
scorer (EBAKER's global + local) plugs into the same protocol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rsitr.config import RsitrParams, VariantParams
from rsitr.models.factory import ClipBundle
from rsitr.models.text_tower import pooled_text, project_text, text_tower, trim_padding

Features = dict[str, torch.Tensor]


class RetrievalModel(nn.Module):
    """open_clip CLIP wrapped with tokenizer, preprocessing and the retrieval contract."""

    def __init__(self, bundle: ClipBundle, variant: VariantParams, params: RsitrParams):
        super().__init__()
        self.clip = bundle.clip
        self.tokenizer = bundle.tokenizer
        self.image_size = bundle.image_size
        self.mean = bundle.mean
        self.std = bundle.std
        self.preprocess = bundle.preprocess  # open_clip's PreprocessCfg (ImageLoader.for_model)
        self.variant = variant
        self.params = params  # the whole config: paths (e.g. the keyword list) and data settings
        self.model_params = params.model
        self.context_length = int(self.clip.context_length)

    # ------------------------------------------------------------------ text & images
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """Captions -> token ids ``[B, L]`` (open_clip BPE; truncated at the context length)."""
        return self.tokenizer(list(texts))

    @property
    def device(self) -> torch.device:
        return self.clip.logit_scale.device

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        features = self.clip.encode_image(images)  # [B, D]
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        features = pooled_text(self.clip, tokens)  # [B, D], trailing padding skipped (exact: causal tower)
        return F.normalize(features, dim=-1) if normalize else features

    def encode_image_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled embedding ``[B, D]`` and projected patch tokens ``[B, P, D]`` (CLS excluded)."""
        visual = self.clip.visual
        x = visual._embeds(images)  # [B, 1+P, W]
        x = visual.transformer(x)
        pooled, tokens = visual._pool(x)  # [B, W], [B, P, W] (after ln_post)
        if visual.proj is not None:
            pooled = pooled @ visual.proj
            tokens = tokens @ visual.proj
        return pooled, tokens

    def encode_text_tokens(self, text: torch.Tensor, trim: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled (EOT) embedding ``[B, D]`` and projected token features ``[B, L, D]``.

        ``trim``: drop the batch's trailing padding columns first (``L`` shrinks; exact for
        every real position, ``rsitr.models.text_tower``).
        """
        if trim:
            text = trim_padding(self.clip, text)  # [B, L']
        x = text_tower(self.clip, text)  # [B, L, W]
        pooled = x[torch.arange(x.shape[0], device=x.device), text.argmax(dim=-1)]  # EOT token
        return project_text(self.clip, pooled), project_text(self.clip, x)

    def similarity(self, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``[N_img, N_txt]`` of (normalised) global embeddings."""
        return F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T

    # ------------------------------------------------------------------ training
    def logit_scale(self) -> torch.Tensor:
        return self.clip.logit_scale.exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, **batch: Any) -> Features:
        return {
            "image_features": self.encode_image(images),  # [B, D]
            "text_features": self.encode_text(tokens),  # [B, D]
            "logit_scale": self.logit_scale(),
        }

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def embed_images(self, images: torch.Tensor) -> Features:
        return {"global": self.encode_image(images)}

    @torch.no_grad()
    def embed_texts(self, tokens: torch.Tensor) -> Features:
        return {"global": self.encode_text(tokens)}

    @torch.no_grad()
    def score(self, image_embeddings: Features, text_embeddings: Features) -> torch.Tensor:
        """The variant's retrieval score ``[N_img, N_txt]``; CLIP: cosine of globals."""
        return self.similarity(image_embeddings["global"], text_embeddings["global"])

    # ------------------------------------------------------------------ bookkeeping
    def set_keywords(self, keywords: Sequence[str]) -> None:
        """The keyword list, for a method whose ``MethodSpec.uses_keywords`` (EBAKER's KER); default: unused."""

    def configure_trainable(self) -> None:
        """Full fine-tune: everything trains. Subclasses freeze what they keep fixed."""
        for parameter in self.parameters():
            parameter.requires_grad_(True)

    def components(self) -> dict[str, nn.Module]:
        """Named parts for ``rsitr describe`` (parameter breakdown)."""
        clip = self.clip
        text_modules = nn.ModuleList([clip.transformer, clip.token_embedding, clip.ln_final])
        return {"image_encoder": clip.visual, "text_encoder": text_modules}

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights a checkpoint must hold: everything for full fine-tune (variants may save less)."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_saved_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state, strict=True)

    @torch.no_grad()
    def clamp_logit_scale(self, max_value: float = math.log(100.0)) -> None:
        """Clamp a LEARNABLE log temperature to ``[0, ln 100]`` (open_clip_train, after every step)."""
        if self.clip.logit_scale.requires_grad:
            self.clip.logit_scale.clamp_(0.0, max_value)

    def init_temperature(self, temperature: float, learnable: bool) -> None:
        with torch.no_grad():
            self.clip.logit_scale.fill_(math.log(1.0 / temperature))
        self.clip.logit_scale.requires_grad_(learnable)
