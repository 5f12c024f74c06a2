"""CFITR's hashing head: a global embedding -> a continuous code in (-1, 1)^bits.

CFITR (Zhou, Wu, Deng, IEEE GRSL 2024; released code ZhWenQian/CFITR) puts one head per
modality on the dual-stream features::

    h = tanh(Linear(ReLU(BatchNorm1d(Linear(x)))))      # [B, bits] in (-1, 1)
    code = sign(h)                                        # at inference

The module lives here (models layer) so that both a model trained with its heads
(``rsitr.models.cfitr``) and the retrieval layer's post-hoc heads can use it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["HashHead"]


class HashHead(nn.Module):
    """Linear -> BatchNorm1d -> ReLU -> Linear(bits) -> tanh: ``[B, D] -> [B, bits]``."""

    def __init__(self, in_dim: int, hidden: int, bits: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, bits),
            nn.Tanh(),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)  # [B, bits] in (-1, 1)
