"""CFITR's hashing loss, per micro-batch as released (``compute_irtr_hash``, ZhWenQian/CFITR).

For one micro-batch of ``n`` matching pairs with continuous codes ``u_i`` (image) and ``v_i``
(text) and ``s_ij = cos(u_i, v_j)``::

    hinge        = mean_i max_{j != i} [m - s_ii + s_ij]_+ + mean_j max_{i != j} [m - s_jj + s_ij]_+
    quantization = beta  * sum_i (||B_i - u_i||^2 + ||B_i - v_i||^2)
    balance      = gamma * sum_i ((sum_b u_ib)^2 + (sum_b v_ib)^2)

The hinge is VSE++'s (``calcul_loss`` with ``max_violation=True``: the hardest negative,
averaged over the micro-batch); both regularisers are SUMMED over the micro-batch. The
release trains micro-batches of 8 and Lightning averages their losses, so a batch is cut
into consecutive micro-batches of ``micro_batch`` and each term is the mean over them.
``B_i`` is ``sign(h_i)`` (detached) for ``quantization_target: sign``, the intended form;
``zero`` is the release's quirk (its code buffers stay 0, so the term is ``||h||^2``). Pairs
of the same image (same mask id) are not hinge negatives (rsitr's batches may hold two
captions of one image; the release's random micro-batches rarely do).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def vse_hinge(image_codes: torch.Tensor, text_codes: torch.Tensor, margin: float,
              same_image: torch.Tensor) -> torch.Tensor:
    """Hardest-negative VSE++ hinge, mean over anchors, both directions; codes ``[n, bits]``."""
    scores = F.normalize(image_codes.float(), dim=1) @ F.normalize(text_codes.float(), dim=1).T  # [n, n]
    positive = scores.diag()  # [n]
    not_negative = same_image | torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)  # [n, n]
    cost_text = (margin + scores - positive[:, None]).clamp(min=0).masked_fill(not_negative, 0.0)  # image anchors
    cost_image = (margin + scores - positive[None, :]).clamp(min=0).masked_fill(not_negative, 0.0)  # text anchors
    return cost_text.max(dim=1).values.mean() + cost_image.max(dim=0).values.mean()


def quantization_sum(codes: torch.Tensor, target: str) -> torch.Tensor:
    """``sum_i ||B_i - h_i||^2`` over ``codes [n, bits]``; ``B = sign(h)`` (detached) or 0 (release quirk)."""
    if target == "zero":
        return codes.float().pow(2).sum()
    if target != "sign":
        raise ValueError(f"quantization_target must be 'sign' or 'zero', got {target!r}")
    return (torch.sign(codes).detach() - codes).float().pow(2).sum()


def balance_sum(codes: torch.Tensor) -> torch.Tensor:
    """``sum_i (sum_b h_ib)^2`` over ``codes [n, bits]`` (the release's ``calc_bit_balance_loss``)."""
    return codes.float().sum(dim=1).pow(2).sum()


def micro_batched_hash_loss(
    image_codes: torch.Tensor,
    text_codes: torch.Tensor,
    image_ids: torch.Tensor | None,
    *,
    micro_batch: int = 8,
    margin: float = 0.2,
    quantization_weight: float = 0.001,
    balance_weight: float = 0.01,
    quantization_target: str = "sign",
) -> dict[str, torch.Tensor]:
    """``{"hash_hinge", "hash_quantization", "hash_balance"}``: each the mean over micro-batches (weights applied)."""
    if image_codes.shape != text_codes.shape or image_codes.ndim != 2:
        raise ValueError(f"codes must both be [B, bits]; got {tuple(image_codes.shape)} and {tuple(text_codes.shape)}")
    size = image_codes.shape[0]
    ids = torch.arange(size, device=image_codes.device) if image_ids is None else image_ids.to(image_codes.device)
    sums = {"hash_hinge": [], "hash_quantization": [], "hash_balance": []}
    for start in range(0, size, micro_batch):
        u, v = image_codes[start: start + micro_batch], text_codes[start: start + micro_batch]  # [n, bits]
        chunk_ids = ids[start: start + micro_batch]  # [n]
        same = chunk_ids[:, None] == chunk_ids[None, :]  # [n, n]
        sums["hash_hinge"].append(vse_hinge(u, v, margin, same))
        sums["hash_quantization"].append(
            quantization_weight * (quantization_sum(u, quantization_target) + quantization_sum(v, quantization_target)))
        sums["hash_balance"].append(balance_weight * (balance_sum(u) + balance_sum(v)))
    return {name: torch.stack(values).mean() for name, values in sums.items()}
