"""EBAKER's local (token-level) similarity and the fused retrieval score.

EBAKER (Eliminate Before Align: A Remote Sensing Image-Text Retrieval Framework with
Keyword Explicit Reasoning, ACM MM 2024), Sec. 2.2, Eq. 5-6: every image patch token
(CLS excluded) and every text token is projected to the joint space and L2-normalised;
the cosines of all (text token, patch) pairs form a matrix ``C`` of shape ``[L_t, P]``
per (image, text) pair, and the local similarity is an L2 norm over the text axis, then
over the patch axis, i.e. the Frobenius norm ``||C||_F``.

Which text positions count (``text_positions``, see ``docs/methods.md``):

* ``"all"`` (paper-exact default, the released code): every context position (77 for
  CLIP), padding, SOT and EOT included.
* ``"real"`` (rsitr option): the caption's word tokens only, strictly between SOT and EOT.
  Padding is excluded; so are SOT, whose output under CLIP's causal self-attention does not
  depend on the caption at all (a caption-independent, image-dependent bias), and EOT, the
  caption's global feature (the paper, Sec. 2.1.2, takes "the others" besides EOT). A
  caption with no word token gets local score 0.

Normalisation (``normalize``): the paper and the released code use the RAW Frobenius norm
(default, ``normalize=False``). ``normalize=True`` (rsitr option ``local_normalize``) divides
it by ``sqrt(n_t * P)`` (``n_t`` = counted text positions), the root-mean-square token-pair
cosine in ``[0, 1]`` like a cosine: the raw norm of a ``[77, 49]`` matrix is up to ~61x a
cosine, which dwarfs the global score in ``0.6 * global + 0.4 * local`` and gives InfoNCE
logits of several hundred at the 0.05 temperature; with ``"real"`` positions a raw norm
also grows with ``sqrt(n_t)``, ranking long captions first. With ``"all"`` the factor is
one constant, so local-only rankings are unchanged by it.

Inference computes the ``[N_img, N_txt]`` local matrix in blocks of ``block x block``
pairs (:func:`blockwise_local_similarity`), so peak memory is bounded by the block size,
not the test-set size (the released code uses 400 x 400 blocks). Captions are processed in
order of their length so that each block is trimmed to its longest caption, and a block's
squared Frobenius norms are computed either from the cosine matrix or, exactly and cheaper
for ViT-B-32 shapes, as inner products of the token Gram matrices (``method="gram"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

TextPositions = Literal["real", "all"]


def text_position_mask(tokens: torch.Tensor, mode: TextPositions = "real") -> torch.Tensor:
    """Which positions of ``tokens [B, L]`` enter the local score: ``bool [B, L]``.

    ``real``: word tokens strictly between SOT (position 0) and EOT (the highest id, as
    CLIP's pooling assumes); ``all``: every position.
    """
    batch, length = tokens.shape
    if mode == "all":
        return torch.ones(batch, length, dtype=torch.bool, device=tokens.device)
    if mode != "real":
        raise ValueError(f"text_positions must be 'real' or 'all', got {mode!r}")
    eot = tokens.argmax(dim=-1)  # [B]
    positions = torch.arange(length, device=tokens.device)  # [L]
    return (positions[None, :] > 0) & (positions[None, :] < eot[:, None])  # [B, L]


def prepare_text_tokens(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L2-normalise token features ``[B, L, D]`` and zero the positions outside ``mask [B, L]``.

    Zeroed positions contribute nothing to the squared Frobenius norm, so ragged captions
    can be scored as one padded tensor.
    """
    return F.normalize(features, dim=-1) * mask.unsqueeze(-1).to(features.dtype)  # [B, L, D]


def _pair_scale(text_counts: torch.Tensor, patches: int, dtype: torch.dtype) -> torch.Tensor:
    """``1 / sqrt(n_t * P)`` per caption ``[C]`` (0 for a caption without counted tokens)."""
    counts = text_counts.to(dtype)
    return torch.where(counts > 0, (counts * patches).clamp_min(1.0).rsqrt(), torch.zeros_like(counts))


def cheaper_method(images: int, patches: int, texts: int, length: int, dim: int) -> Literal["direct", "gram"]:
    """The exact computation with fewer multiply-adds for ``images x texts`` pairs.

    ``direct``: ``N*P x C*L`` cosines, ``P*L*D`` per pair. ``gram``: one ``D x D`` Gram matrix per
    image and per caption (``(N*P + C*L) * D^2``), then ``D^2`` per pair. rsitr-tiny training
    (64 x 64 pairs, P = L = 64, D = 128): gram is ~10x cheaper; ViT-B-32 (100 x 100, P 49, L 77,
    D 512): ~3x.
    """
    direct = images * texts * patches * length * dim
    gram = (images * patches + texts * length) * dim * dim + images * texts * dim * dim
    return "gram" if gram < direct else "direct"


def local_similarity(
    image_tokens: torch.Tensor,
    text_tokens: torch.Tensor,
    text_counts: torch.Tensor,
    *,
    normalize: bool = False,
    method: Literal["auto", "direct", "gram"] = "auto",
) -> torch.Tensor:
    """Local scores ``[N, C]`` of every image with every caption, in one (differentiable) step.

    ``image_tokens [N, P, D]``: L2-normalised patch tokens. ``text_tokens [C, L, D]``: from
    :func:`prepare_text_tokens` (normalised, zero outside the counted positions).
    ``text_counts [C]``: number of counted positions per caption. ``method``: ``direct`` (the
    cosine matrix, ``N*P*C*L`` floats) or ``gram`` (``||T P^T||_F^2 = <T^T T, P^T P>_F``,
    ``(N + C) * D^2`` floats); both are exact, ``auto`` takes the cheaper
    (:func:`cheaper_method`). The squares are summed in at least fp32, also under autocast.
    Evaluation goes through :func:`blockwise_local_similarity`.
    """
    n, patches, dim = image_tokens.shape
    c, length, _ = text_tokens.shape
    if method == "auto":
        method = cheaper_method(n, patches, c, length, dim)
    if method == "gram":
        squared = _squared_frobenius_gram(image_tokens, text_tokens)  # [N, C]
    elif method == "direct":
        cosines = image_tokens.reshape(n * patches, dim) @ text_tokens.reshape(c * length, dim).T  # [N*P, C*L]
        cosines = cosines.to(torch.promote_types(cosines.dtype, torch.float32))  # sum squares in >= fp32 (autocast)
        squared = cosines.square().reshape(n, patches, c, length).sum(dim=(1, 3))  # [N, C]
    else:
        raise ValueError(f"method must be 'auto', 'direct' or 'gram', got {method!r}")
    # sqrt has an infinite gradient at 0 (a caption without counted tokens): clamp inside.
    frobenius = squared.clamp_min(1e-12).sqrt()  # [N, C]
    if not normalize:
        return torch.where(squared > 0, frobenius, torch.zeros_like(frobenius))
    return frobenius * _pair_scale(text_counts, patches, frobenius.dtype)[None, :]


def _squared_frobenius_gram(image_tokens: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
    """``||T_j P_i^T||_F^2`` for every pair ``[N, C]`` as ``<P_i^T P_i, T_j^T T_j>_F``, differentiable, >= fp32."""
    dtype = torch.promote_types(image_tokens.dtype, torch.float32)
    with torch.autocast(image_tokens.device.type, enabled=False):
        images = image_tokens.to(dtype)  # [N, P, D]
        texts = text_tokens.to(dtype)  # [C, L, D]
        image_grams = (images.transpose(1, 2) @ images).flatten(1)  # [N, D*D]
        text_grams = (texts.transpose(1, 2) @ texts).flatten(1)  # [C, D*D]
        return image_grams @ text_grams.T  # [N, C]


def _flat_gram(tokens: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Gram matrices ``X^T X`` of ``tokens [B, K, D]``, flattened: ``[B, D*D]`` (built ``chunk`` at a time)."""
    batch, _, dim = tokens.shape
    out = tokens.new_empty(batch, dim * dim)
    for s0 in range(0, batch, chunk):
        part = tokens[s0 : s0 + chunk]  # [b, K, D]
        torch.bmm(part.transpose(1, 2), part, out=out[s0 : s0 + part.shape[0]].view(-1, dim, dim))
    return out


@torch.no_grad()
def blockwise_local_similarity(
    image_tokens: torch.Tensor,
    text_tokens: torch.Tensor,
    text_mask: torch.Tensor,
    block_size: int = 400,
    *,
    normalize: bool = False,
    method: Literal["auto", "direct", "gram"] = "auto",
) -> torch.Tensor:
    """Local scores ``[N, C]`` computed ``block_size x block_size`` pairs at a time.

    ``image_tokens [N, P, D]`` normalised; ``text_tokens [C, L, D]`` normalised and zero
    outside ``text_mask [C, L]`` (bool or 0/1). Equal to :func:`local_similarity` up to
    float rounding. Captions are visited sorted by their last counted position, so each
    text block is cut to its own longest caption (``L_b <= L``).

    Two exact ways to get ``||T P^T||_F^2`` per pair:

    * ``direct``: the cosine matrix of the block, ``[bi*P, bt*L_b]`` floats of peak memory,
      ``P * L_b * D`` multiply-adds per pair;
    * ``gram``: ``||T P^T||_F^2 = <T^T T, P^T P>_F``, the inner product of the two
      ``D x D`` Gram matrices, so a block is one matrix product of flattened Grams:
      ``D^2`` multiply-adds per pair (plus building the Grams), peak memory about
      ``(bi + bt) * D^2`` floats, independent of the caption length. Cheaper when
      ``P * L_b > D`` (ViT-B-32: 49 patches x ~20 words = ~1000 vs 512).

    ``auto`` picks the one with fewer multiply-adds for a block (:func:`cheaper_method`).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    n, patches, dim = image_tokens.shape
    c = text_tokens.shape[0]
    mask = text_mask.to(torch.bool)
    extent, text_blocks = _text_blocks(mask, block_size)
    scale = _pair_scale(mask.sum(dim=1), patches, image_tokens.dtype) if normalize else None  # [C]
    if method == "auto":  # one block's cost at the mean caption extent
        mean_span = max(1, round(float(extent.float().mean()))) if c else 1
        method = cheaper_method(min(n, block_size), patches, min(c, block_size), mean_span, dim)
    if method not in ("direct", "gram"):
        raise ValueError(f"method must be 'auto', 'direct' or 'gram', got {method!r}")
    scores = torch.empty(n, c, dtype=image_tokens.dtype, device=image_tokens.device)
    for i0 in range(0, n, block_size):
        images = image_tokens[i0 : i0 + block_size]  # [bi, P, D]
        image_grams = _flat_gram(images) if method == "gram" else None  # [bi, D*D]
        for columns, span in text_blocks:
            block = _block_frobenius(images, image_grams, text_tokens[columns, :span])  # [bi, bt]
            if scale is not None:
                block.mul_(scale[columns][None, :])
            scores[i0 : i0 + images.shape[0], columns] = block
    return scores


def _text_blocks(mask: torch.Tensor, block_size: int) -> tuple[torch.Tensor, list[tuple[torch.Tensor, int]]]:
    """Caption extents ``[C]`` (last counted position + 1; 0: none) and the text blocks.

    Each block is ``(columns [bt], span)``: up to ``block_size`` captions in order of their
    extent (short captions first), and the longest extent among them.
    """
    positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    extent = (mask * positions).amax(dim=1)  # [C]
    order = torch.argsort(extent, stable=True)  # [C] short captions first
    blocks = []
    for t0 in range(0, mask.shape[0], block_size):
        columns = order[t0 : t0 + block_size]  # [bt]
        blocks.append((columns, max(1, int(extent[columns].max()))))
    return extent, blocks


def _block_frobenius(images: torch.Tensor, image_grams: torch.Tensor | None, texts: torch.Tensor) -> torch.Tensor:
    """``||T P^T||_F`` of every pair of a block ``[bi, bt]``: ``images [bi, P, D]``, ``texts [bt, L_b, D]``.

    With ``image_grams [bi, D*D]`` (``method="gram"``) from the Gram matrices, else from the cosines.
    """
    if image_grams is not None:
        squared = image_grams @ _flat_gram(texts).T  # [bi, bt]
        return squared.clamp_min_(0.0).sqrt_()
    bi, patches, dim = images.shape
    bt, span, _ = texts.shape
    cosines = images.reshape(bi * patches, dim) @ texts.reshape(-1, dim).T  # [bi*P, bt*L_b]
    cosines.square_()
    return cosines.view(bi, patches, bt, span).sum(dim=(1, 3)).sqrt_()  # [bi, bt]


def global_similarity(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """Cosine ``[N, C]`` of pooled embeddings ``[N, D]``, ``[C, D]``."""
    return F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T


@dataclass(frozen=True)
class FusedScoreOptions:
    """EBAKER's inference fusion (Eq. 6) and how its local term is computed (:func:`blockwise_local_similarity`)."""

    global_weight: float = 0.6
    local_weight: float = 0.4
    block_size: int = 400
    normalize: bool = False
    method: Literal["auto", "direct", "gram"] = "auto"


@torch.no_grad()
def fused_score(
    image_global: torch.Tensor,
    text_global: torch.Tensor,
    image_tokens: torch.Tensor | None = None,
    text_tokens: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    options: FusedScoreOptions = FusedScoreOptions(),
) -> torch.Tensor:
    """EBAKER's inference score (Eq. 6): ``global_weight * global + local_weight * local``.

    Without token features (local alignment switched off) the score is the global cosine.
    """
    scores = global_similarity(image_global, text_global)  # [N, C]
    if image_tokens is None or text_tokens is None or text_mask is None:
        return scores
    local = blockwise_local_similarity(image_tokens, text_tokens, text_mask, options.block_size,
                                       normalize=options.normalize, method=options.method)
    return scores.mul_(options.global_weight).add_(local, alpha=options.local_weight)
