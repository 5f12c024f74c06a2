"""CLIP's text tower, run only over the positions a batch uses.

CLIP's text transformer is causal (Radford et al. 2021, Sec. 2.4; open_clip builds the
same mask): position ``i`` attends to positions ``<= i``. With argmax (end-of-text)
pooling, the features of every position up to a caption's end-of-text token do not depend
on the padding after it. Running the tower on ``tokens[:, :L']`` with ``L'`` the batch's
last end-of-text position + 1 therefore gives the same pooled embedding as the full
context, for a fraction of the compute on short captions (English captions of the
synthetic benchmark use at most 22 of 64 positions; web-style corpus captions 24).

Only paths that need no padding-position features trim: the pooled embedding, PE-RSITR's
towers, EBAKER's KER pass (its head masks padding keys) and EBAKER's local score over real
tokens. EBAKER's paper-exact local score over ALL positions (``docs/methods.md``) keeps the
full context. Text towers that are not open_clip's causal CLIP tower (Hugging Face text
encoders, non-argmax pooling) always run the full context.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def can_trim(clip: nn.Module) -> bool:
    """Whether ``clip`` has open_clip's causal text transformer with end-of-text (argmax) pooling."""
    return getattr(clip, "text_pool_type", None) == "argmax" and getattr(clip, "attn_mask", None) is not None


def used_length(tokens: torch.Tensor) -> int:
    """Positions up to and including the batch's last end-of-text token (the largest id)."""
    return int(tokens.argmax(dim=-1).max().item()) + 1


def trim_padding(clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``tokens [B, L]`` without the trailing columns that are padding in every row (when exact)."""
    if not can_trim(clip) or tokens.shape[1] == 0:
        return tokens
    return tokens[:, : used_length(tokens)]  # [B, L'], L' <= L


def text_tower(
    clip: nn.Module,
    tokens: torch.Tensor,
    token_embeddings: torch.Tensor | None = None,
    after_positions: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Features ``[B, L, W]`` after ``ln_final`` of ``tokens [B, L]``, ``L <= context length``.

    ``token_embeddings [B, L, W]`` replaces the token-embedding lookup (EBAKER's [mask]
    input); ``after_positions`` transforms the input after the positional embedding
    (PE-RSITR's token dropout).
    """
    cast_dtype = clip.transformer.get_cast_dtype()
    length = tokens.shape[1]
    x = clip.token_embedding(tokens) if token_embeddings is None else token_embeddings
    x = x.to(cast_dtype) + clip.positional_embedding[:length].to(cast_dtype)  # [B, L, W]
    if after_positions is not None:
        x = after_positions(x)
    attn_mask = clip.attn_mask[:length, :length] if clip.attn_mask is not None else None  # [L, L] causal
    x = clip.transformer(x, attn_mask=attn_mask)
    return clip.ln_final(x)  # [B, L, W]


def project_text(clip: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """``[..., W] -> [..., D]`` through the text projection (a matrix or a Linear)."""
    if clip.text_projection is None:
        return features
    if isinstance(clip.text_projection, nn.Linear):
        return clip.text_projection(features)
    return features @ clip.text_projection


def pooled_text(clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Unnormalised end-of-text embeddings ``[B, D]``, equal to ``clip.encode_text`` on the full context."""
    if not can_trim(clip):
        return clip.encode_text(tokens)
    tokens = trim_padding(clip, tokens)  # [B, L']
    features = text_tower(clip, tokens)  # [B, L', W]
    pooled = features[torch.arange(tokens.shape[0], device=tokens.device), tokens.argmax(dim=-1)]  # [B, W]
    return project_text(clip, pooled)  # [B, D]
