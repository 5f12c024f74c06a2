"""CFITR options (``variants.<name>.options`` of a ``method: cfitr`` variant).

CFITR (Zhou, Wu, Deng, IEEE GRSL 2024; ``docs/methods.md``, CFITR): a dual
encoder with one hash head per modality (the coarse stage) and a single-stream fusion
encoder with a rank head (the fine stage), trained jointly. Defaults are the released code
(ZhWenQian/CFITR, ViLT-based) except the fusion encoder's sizes, chosen for CPU cost (the
release's are a config away: ``fusion_layers: 6, fusion_width: 768, fusion_heads: 12,
image_token_grid: 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rsitr.config.schema import at_least
from rsitr.errors import ConfigError


@dataclass(frozen=True)
class CfitrOptions:
    """CFITR: dual-stream hashing module + single-stream re-scoring module (GRSL 2024)."""

    # single-stream module (SSM): transformer blocks over [CLS ; text tokens ; image tokens]
    fusion_layers: int = 2  # release: the last 6 of ViLT's 12 blocks; 2 for CPU cost (measured, see the module)
    fusion_width: int = 64  # release: 768 (ViLT-B); 64 for CPU cost
    fusion_heads: int = 2  # release: 12 (head width 64); 2 keeps the head width at 32
    fusion_init: Literal["fresh", "tower"] = "fresh"  # "tower": copy the image tower's last blocks (widths must match)
    image_token_grid: int = 4  # pool the patch grid to g x g tokens before fusion; 0 = all patches (release)
    # rank loss: ViLT's irtr loss, cross-entropy over 1 matching caption + ``negatives`` others (no margin)
    negatives: int = 15  # release: draw_false_text 15
    negative_mining: Literal["random", "hard"] = "random"  # release: random; "hard": top in-batch dual cosine
    rank_weight: float = 1.0  # release: the single-stream loss summed with weight 1
    # dual-stream hashing module (DSHM): Linear -> BatchNorm1d -> ReLU -> Linear(bits) -> tanh per modality
    hash_bits: int = 128  # release: 128
    hash_hidden: int = 256  # hidden width of the heads (release: the ViLT hidden size, 768)
    margin: float = 0.2  # release: VSE++ hinge margin 0.2, hardest negative, on the code cosine
    quantization_weight: float = 0.001  # release: beta 0.001 on sum ||B - h||^2
    balance_weight: float = 0.01  # release: gamma 0.01 on sum (sum over bits h)^2
    micro_batch: int = 8  # release: batch 256 = 32 accumulated micro-batches of 8; hash terms per micro-batch
    quantization_target: Literal["sign", "zero"] = "sign"  # "sign": ||sign(h) - h||^2 (intended); "zero": B = 0 quirk
    hash_weight: float = 1.0  # release: the hash loss summed with weight 1
    # rsitr option: symmetric InfoNCE on the dual stream's globals (the release has none: compute_irtr_be
    # only builds features), so the dual cosine and the hash codes' inputs are trained directly
    contrastive_weight: float = 0.0  # release: 0
    pair_chunk: int = 512  # pairs per SSM forward at evaluation (memory/speed only; no effect on scores)

    def validate(self, path: str) -> None:
        at_least(self, path, 1, "fusion_layers", "fusion_width", "fusion_heads", "hash_hidden", "micro_batch",
                  "pair_chunk")
        at_least(self, path, 0, "negatives", "image_token_grid", "margin", "quantization_weight", "balance_weight",
                  "hash_weight", "rank_weight", "contrastive_weight")
        if self.fusion_width % self.fusion_heads:
            raise ConfigError(f"{path}.fusion_width ({self.fusion_width}) must be a multiple of fusion_heads "
                              f"({self.fusion_heads})")
        if self.hash_bits < 8 or self.hash_bits % 8:
            raise ConfigError(f"{path}.hash_bits must be a positive multiple of 8 (packed codes), got {self.hash_bits}")
