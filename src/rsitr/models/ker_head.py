"""The Keyword Explicit Reasoning head of EBAKER: cross-attention, transformer blocks, MLM head.

EBAKER (Eliminate Before Align: A Remote Sensing Image-Text Retrieval Framework with
Keyword Explicit Reasoning, ACM MM 2024), Sec. 2.3, Eq. 11: the masked caption's token
features are the queries of ONE cross-attention layer whose keys/values are the image
tokens (CLS + patches); ``N`` transformer blocks (CLIP-style pre-LN residual blocks; the
paper uses 4, the released code 2) follow, then the MLM head ``Linear -> QuickGELU ->
LayerNorm -> Linear(vocab)``. The head works in the joint embedding width (the text and
image features after their projections). Padding positions of the caption are excluded
as keys of the blocks' self-attention, and logits are computed for the masked positions
only (a full ``[B, L, vocab]`` tensor would be ~1.5 GB at ViT-B-32, batch 100).

The ``[mask]`` token is not a new vocabulary entry: the head owns one learned input
embedding (``mask_embedding``, text-tower width) that replaces the token embedding at
masked positions before the text encoder, so ``clip.token_embedding`` and base
checkpoints are untouched.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from open_clip.transformer import QuickGELU
from torch import nn

from rsitr.errors import ConfigError


class ResidualBlock(nn.Module):
    """CLIP's pre-LN transformer block (self-attention + 4x MLP with QuickGELU), padding-aware."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * width, width)),
        ]))

    def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, L, W]``; ``padding bool [B, L]`` (True = ignore as key)."""
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, key_padding_mask=padding, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class KerHead(nn.Module):
    """Masked text features ``[B, L, W]`` + image tokens ``[B, 1+P, W]`` -> vocabulary logits."""

    def __init__(self, width: int, vocab_size: int, layers: int = 4, heads: int = 8, mask_width: int | None = None):
        super().__init__()
        if width % heads:
            raise ConfigError(f"options.ker_heads: {heads} heads do not divide the embedding width {width}")
        # The learned [mask] input embedding (text-tower width): CLIP's vocabulary and its
        # token_embedding stay untouched, so base weights load unchanged.
        self.mask_embedding = nn.Parameter(torch.zeros(mask_width or width))
        self.ln_query = nn.LayerNorm(width)
        self.ln_memory = nn.LayerNorm(width)
        self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.blocks = nn.ModuleList([ResidualBlock(width, heads) for _ in range(layers)])
        self.ln_post = nn.LayerNorm(width)
        self.mlm_head = nn.Sequential(OrderedDict([
            ("dense", nn.Linear(width, width)), ("gelu", QuickGELU()), ("ln", nn.LayerNorm(width)),
            ("fc", nn.Linear(width, vocab_size)),
        ]))

    def forward(
        self,
        text_tokens: torch.Tensor,
        image_tokens: torch.Tensor,
        positions: torch.Tensor,
        padding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[M, vocab]`` at the ``M`` True entries of ``positions bool [B, L]``.

        ``text_tokens [B, L, W]``: the masked caption through the text encoder;
        ``image_tokens [B, 1+P, W]``: CLS + patches; ``padding bool [B, L]``: True at padding.
        """
        memory = self.ln_memory(image_tokens)
        x = self.cross_attn(self.ln_query(text_tokens), memory, memory, need_weights=False)[0]  # [B, L, W]
        for block in self.blocks:
            x = block(x, padding)
        return self.mlm_head(self.ln_post(x[positions]))  # [M, vocab]
