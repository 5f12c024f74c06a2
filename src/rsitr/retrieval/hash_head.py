"""Hash heads of the coarse stage of CFITR: global embeddings -> binary codes.

CFITR (Zhou, Wu, Deng, "Toward Efficient and Accurate Remote Sensing Image-Text Retrieval
with a Coarse-to-Fine Approach", IEEE GRSL 2024, doi:10.1109/LGRS.2024.3494543) puts one
hashing head per modality on a dual encoder::

    h = tanh(Linear(ReLU(BatchNorm1d(Linear(x)))))      # [B, bits] in (-1, 1)
    code = sign(h)                                        # at inference, packed to bits

In rsitr the encoder is a trained variant kept frozen, so the heads train on its
precomputed global embeddings. The loss is a dict of named scalar terms (the loss contract
of ``rsitr.losses``)::

    hinge        = VSE++ bidirectional hinge (hardest negative, as CFITR's released code)
                   on the cosine of the continuous codes, margin ``c2f.margin``
    quantization = quantization_weight * sum_i ||sign(h_i) - h_i||^2
    balance      = balance_weight * sum_i (sum_b h_ib)^2

The balance term follows CFITR's released code (``calc_bit_balance_loss``: the sum over
the bits of each code, squared), which asks every code to hold as many +1 as -1 bits.
Both regularisers are SUMMED over the batch as released (``docs/methods.md``, CFITR);
``c2f.regulariser_reduction: mean`` averages them instead (rsitr option: the weights then
do not depend on the batch size). Both modalities contribute to each regulariser.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rsitr.atomic import atomic_path
from rsitr.models.hash_heads import HashHead
from rsitr.errors import ModelError
from rsitr.retrieval.binary_codes import pack_codes

__all__ = [
    "HASH_HEADS_FILE",
    "HashHead",
    "HashHeads",
    "fit_hash_heads",
    "hash_loss",
    "load_hash_heads",
    "save_hash_heads",
]

FORMAT = "rsitr-hash-heads-v1"
HASH_HEADS_FILE = "hash_heads.pt"


class HashHeads(nn.Module):
    """The image and the text head, sharing one Hamming space of ``bits`` bits."""

    def __init__(self, in_dim: int, hidden: int = 256, bits: int = 128):
        super().__init__()
        if bits < 8 or bits % 8:
            raise ValueError(f"bits must be a positive multiple of 8, got {bits}")
        self.in_dim, self.hidden, self.bits = int(in_dim), int(hidden), int(bits)
        self.image = HashHead(in_dim, hidden, bits)
        self.text = HashHead(in_dim, hidden, bits)
        # Packed codes of the PPSR reference query sets (training captions "text", training
        # images "image"), uint8 [R, bits / 8]; set by training, saved and loaded with the heads.
        self.reference_codes: dict[str, np.ndarray] = {}

    @property
    def config(self) -> dict[str, int]:
        return {"in_dim": self.in_dim, "hidden": self.hidden, "bits": self.bits}

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"image_codes": self.image(image_features), "text_codes": self.text(text_features)}

    @torch.no_grad()
    def pack(self, modality: str, features: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
        """Packed sign codes ``uint8 [N, bits / 8]`` of global embeddings ``[N, D]`` (eval mode)."""
        head = {"image": self.image, "text": self.text}[modality]
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        parts = [
            pack_codes(head(features[i : i + batch_size].to(device).float()).cpu())
            for i in range(0, features.shape[0], batch_size)
        ]
        self.train(was_training)
        if not parts:
            return np.zeros((0, self.bits // 8), dtype=np.uint8)
        return np.concatenate(parts)  # [N, bits / 8]


# ----------------------------------------------------------------------------- loss


def _regularisers(codes: torch.Tensor, reduction: str = "sum") -> tuple[torch.Tensor, torch.Tensor]:
    """Batch sum (or mean) of ||sign(h) - h||^2 and of (sum over bits of h)^2; ``codes`` [B, bits]."""
    quantization = (torch.sign(codes).detach() - codes).pow(2).sum(dim=1)  # [B]
    balance = codes.sum(dim=1).pow(2)  # [B]
    if reduction == "mean":
        return quantization.mean(), balance.mean()
    if reduction != "sum":
        raise ValueError(f"regulariser reduction must be 'sum' or 'mean', got {reduction!r}")
    return quantization.sum(), balance.sum()


def hash_loss(
    image_codes: torch.Tensor,
    text_codes: torch.Tensor,
    *,
    margin: float = 0.2,
    quantization_weight: float = 0.001,
    balance_weight: float = 0.01,
    hardest: bool = True,
    regulariser_reduction: str = "sum",
) -> dict[str, torch.Tensor]:
    """The three CFITR hashing terms for a batch of matching pairs (row i <-> row i).

    Args:
        image_codes, text_codes: continuous codes ``[B, bits]`` (tanh outputs).
        margin: hinge margin on the cosine of the codes.
        hardest: VSE++ max-violation (CFITR) or the sum over all negatives (VSE0).
        regulariser_reduction: ``"sum"`` over the batch (released CFITR) or ``"mean"``.

    Returns:
        ``{"hinge", "quantization", "balance"}``: weighted scalar terms; the loss is their sum.
    """
    if image_codes.shape != text_codes.shape or image_codes.ndim != 2:
        raise ValueError(f"codes must both be [B, bits]; got {tuple(image_codes.shape)} and {tuple(text_codes.shape)}")
    scores = F.normalize(image_codes, dim=1) @ F.normalize(text_codes, dim=1).T  # [B, B] cosine
    positive = scores.diag()  # [B]
    eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_text = (margin + scores - positive[:, None]).clamp(min=0).masked_fill(eye, 0)  # image anchor, [B, B]
    cost_image = (margin + scores - positive[None, :]).clamp(min=0).masked_fill(eye, 0)  # text anchor
    if hardest:
        hinge = cost_text.max(dim=1).values.mean() + cost_image.max(dim=0).values.mean()
    else:
        hinge = cost_text.sum(dim=1).mean() + cost_image.sum(dim=0).mean()
    q_image, b_image = _regularisers(image_codes, regulariser_reduction)
    q_text, b_text = _regularisers(text_codes, regulariser_reduction)
    return {
        "hinge": hinge,
        "quantization": quantization_weight * (q_image + q_text),
        "balance": balance_weight * (b_image + b_text),
    }


# ----------------------------------------------------------------------------- training


def fit_hash_heads(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    caption_image: np.ndarray | torch.Tensor,
    config: Any,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    hardest: bool = True,
) -> tuple[HashHeads, list[dict[str, float]]]:
    """Train the two heads on precomputed (frozen-encoder) global embeddings.

    Each epoch visits every image once in a seeded random order with one of its captions
    drawn at random, so two captions of one image never meet in a batch as negatives
    (the RSITR sampling rule). A last batch of one pair is dropped (BatchNorm needs two).

    Args:
        image_features: ``[N, D]`` image global embeddings.
        text_features: ``[C, D]`` caption global embeddings.
        caption_image: ``[C]`` image index of every caption.
        config: ``CoarseToFineParams`` (the ``c2f`` section of params).

    Returns:
        ``(heads in eval mode on CPU, history)``; history has one dict per epoch with the
        mean of every loss term and of the total (``loss``).
    """
    cfg = config
    captions_of = _captions_of_images(caption_image, image_features.shape[0], text_features.shape[0])
    device = torch.device(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # parameter initialisation
    heads = HashHeads(image_features.shape[1], cfg.hidden, cfg.bits).to(device)
    optimizer = torch.optim.Adam(heads.parameters(), lr=cfg.lr)
    images = image_features.float().to(device)  # [N, D]
    texts = text_features.float().to(device)  # [C, D]
    history: list[dict[str, float]] = []
    heads.train()
    for epoch in range(cfg.epochs):
        order, caption_of = _epoch_pairs(captions_of, generator)  # [N], [N]
        sums: dict[str, float] = {}
        steps = 0
        for start in range(0, len(captions_of), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]  # [B]
            if batch.numel() < 2:
                continue
            out = heads(images[batch.to(device)], texts[caption_of[batch].to(device)])
            terms = _step(out, optimizer, cfg, hardest, epoch)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            steps += 1
        history.append({"epoch": epoch + 1, **{k: v / max(steps, 1) for k, v in sums.items()}})
    return heads.cpu().eval(), history


def _captions_of_images(caption_image: np.ndarray | torch.Tensor, n_images: int, n_captions: int) -> list[torch.Tensor]:
    """The caption indices of every image (``[n_i]`` each); refuses images without captions."""
    owner = torch.as_tensor(np.asarray(caption_image), dtype=torch.long)  # [C]
    if n_images < 2:
        raise ValueError("hash heads need at least two training images")
    if owner.shape[0] != n_captions:
        raise ValueError(f"caption_image has {owner.shape[0]} entries for {n_captions} captions")
    captions_of = [torch.nonzero(owner == i).flatten() for i in range(n_images)]
    if any(c.numel() == 0 for c in captions_of):
        raise ValueError("every training image needs at least one caption")
    return captions_of


def _epoch_pairs(captions_of: list[torch.Tensor], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One epoch's image order ``[N]`` and the caption drawn for each image ``[N]``."""
    n_images = len(captions_of)
    order = torch.randperm(n_images, generator=generator)  # [N]
    picks = torch.rand(n_images, generator=generator)  # [N] which caption per image
    caption_of = torch.stack(
        [captions_of[i][int(picks[i] * captions_of[i].numel())] for i in range(n_images)]
    )  # [N]
    return order, caption_of


def _step(
    out: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, cfg: Any, hardest: bool, epoch: int
) -> dict[str, torch.Tensor]:
    """One optimisation step on a batch's codes; returns ``{"loss", **terms}``."""
    terms = hash_loss(
        out["image_codes"], out["text_codes"], margin=cfg.margin,
        quantization_weight=cfg.quantization_weight, balance_weight=cfg.balance_weight, hardest=hardest,
        regulariser_reduction=cfg.regulariser_reduction,
    )
    loss = sum(terms.values())
    if not torch.isfinite(loss):
        raise ModelError(f"hash head training diverged at epoch {epoch} (loss {float(loss)})")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": loss, **terms}


# ----------------------------------------------------------------------------- persistence


def save_hash_heads(path: str | Path, heads: HashHeads, **meta: Any) -> Path:
    """Write the heads (and their ``reference_codes``) atomically (tmp file + rename).

    ``meta`` values: tensors, numpy arrays, plain data. Numpy arrays are stored as tensors,
    so the file loads with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "config": heads.config,
        "state": {k: v.detach().cpu().clone() for k, v in heads.state_dict().items()},
        "reference": _to_tensors(dict(heads.reference_codes)),
        "meta": _to_tensors(meta),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_hash_heads(path: str | Path) -> tuple[HashHeads, dict[str, Any]]:
    """``(heads in eval mode, meta)``; tensors of ``meta`` that were numpy come back as numpy."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"hash heads {str(path)!r} not found; train them first (`rsitr c2f train --variant ...`)"
        )
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{str(path)!r} is not an rsitr hash-heads file (expected format {FORMAT})")
    heads = HashHeads(**payload["config"])
    heads.load_state_dict(payload["state"])
    heads.reference_codes = _to_numpy(payload.get("reference", {}))
    return heads.eval(), _to_numpy(payload["meta"])


def _to_tensors(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"__numpy__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, Mapping):
        return {str(k): _to_tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_tensors(v) for v in value]
    return value


def _to_numpy(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__numpy__"}:
            return value["__numpy__"].numpy()
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    return value
