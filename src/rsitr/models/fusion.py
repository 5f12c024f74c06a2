"""CFITR's single-stream module (SSM): one transformer over a caption's and an image's tokens.

For a batch of ``M`` (image, caption) pairs::

    x = [CLS ; Wt(text tokens) + type_text ; Wi(image tokens) + type_image]   # [M, 1 + L + P, F]
    x = blocks(x, key padding: the caption's positions after its end-of-text token)
    score = rank_head(pooler(ln(x[:, 0])))                                      # [M]

``Wt`` / ``Wi`` project the towers' token features (``D``) to the fusion width ``F``; the
type embeddings tell the modalities apart (ViLT's token-type embeddings); ``pooler`` is
ViLT's (Linear + tanh on the first position) and ``rank_head`` a Linear to one score, as
ViLT's ``rank_output``. The blocks are open_clip's ``ResidualAttentionBlock`` (pre-norm),
so they can be copies of a tower's last blocks (``CfitrOptions.fusion_init: tower``).
Padded text positions are masked as keys; the text tower is causal, so their features are
arbitrary and must never reach a real position.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

__all__ = ["FusionEncoder"]


class FusionEncoder(nn.Module):
    """Single-stream encoder + rank head: token features of ``M`` pairs -> ``M`` scores."""

    def __init__(self, in_dim: int, width: int, layers: int, heads: int,
                 init_blocks: Sequence[nn.Module] | None = None):
        super().__init__()
        self.width, self.heads = int(width), int(heads)
        self.text_in = nn.Linear(in_dim, width)
        self.image_in = nn.Linear(in_dim, width)
        scale = width ** -0.5
        self.type_embedding = nn.Parameter(scale * torch.randn(2, width))  # [2, F] text, image
        self.cls = nn.Parameter(scale * torch.randn(width))  # [F] the pooled position
        if init_blocks is not None:
            blocks = [copy.deepcopy(block) for block in init_blocks]
        else:
            blocks = [ResidualAttentionBlock(width, heads, batch_first=True) for _ in range(layers)]
        self.blocks = nn.ModuleList(blocks)
        self.heads = int(blocks[0].attn.num_heads) if blocks else self.heads  # a tower's blocks keep their heads
        self.ln_post = nn.LayerNorm(width)
        self.pooler = nn.Sequential(nn.Linear(width, width), nn.Tanh())  # ViLT's Pooler
        self.rank_head = nn.Linear(width, 1)  # ViLT's rank_output

    def attention_mask(self, text_real: torch.Tensor, image_count: int) -> torch.Tensor:
        """Additive mask ``[M * heads, S, S]``: -inf on the keys of padded text positions."""
        m = text_real.shape[0]
        keep = torch.cat([
            torch.ones(m, 1, dtype=torch.bool, device=text_real.device),  # CLS
            text_real,
            torch.ones(m, image_count, dtype=torch.bool, device=text_real.device),
        ], dim=1)  # [M, S]
        s = keep.shape[1]
        mask = torch.zeros(m, s, dtype=torch.float32, device=text_real.device).masked_fill(~keep, float("-inf"))
        return mask[:, None, None, :].expand(m, self.heads, s, s).reshape(m * self.heads, s, s)

    def forward(self, text_tokens: torch.Tensor, text_real: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """Scores ``[M]`` of ``text_tokens [M, L, D]`` (real where ``text_real [M, L]``) with ``image_tokens [M, P, D]``."""
        m = text_tokens.shape[0]
        text = self.text_in(text_tokens) + self.type_embedding[0]  # [M, L, F]
        image = self.image_in(image_tokens) + self.type_embedding[1]  # [M, P, F]
        cls = self.cls.to(text.dtype).expand(m, 1, self.width)  # [M, 1, F]
        x = torch.cat([cls, text, image], dim=1)  # [M, S, F], S = 1 + L + P
        mask = self.attention_mask(text_real, image.shape[1]).to(x.dtype)  # [M * heads, S, S]
        for block in self.blocks:
            x = block(x, attn_mask=mask)
        pooled = self.pooler(self.ln_post(x[:, 0]))  # [M, F]
        return self.rank_head(pooled).squeeze(-1)  # [M]
