"""The multimodal remote-sensing adapter (MRS-Adapter) of PE-RSITR.

Yuan, Zhan, Xiong, "Parameter-Efficient Transfer Learning for Remote Sensing Image-Text
Retrieval", IEEE TGRS 2023 (arXiv:2308.12509).

ONE adapter instance serves every residual block of BOTH CLIP towers. For a residual
stream ``x`` of width ``D`` (image 768 / text 512 for ViT-B/32):

    h = Dropout(ReLU(down_m(x)))                        # [.., bottleneck], m = image|text
    adapter(x) = concat(up_m(h), up_shared(h))          # [.., D - shared_dims] ++ [.., shared_dims]

so the last ``shared_dims`` output channels come from a projection shared by the two
modalities. Down projections keep PyTorch's Linear init (kaiming-uniform, a=sqrt(5));
up projections and all biases start at zero, so a fresh adapter outputs exactly 0 and
the adapted CLIP is the stock CLIP.

``AdaptedBlock`` puts the adapter parallel to a block's MLP:

    x = x + attn(ln_1(x));  x = x + mlp(ln_2(x)) + adapter(x)

It re-registers the stock block's own children under their own names and holds the
adapter by reference only, so ``clip.state_dict()`` keys stay those of a stock open_clip
model (pretrained open_clip / RemoteCLIP / GeoRSCLIP weights still load strictly), and
the adapter's weights live once, in the module that owns it.

Paper vs released code and rsitr's defaults: docs/methods.md (PE-RSITR).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from rsitr.errors import ConfigError, ModelError

MODALITIES = ("image", "text")


def _zero_linear(in_features: int, out_features: int) -> nn.Linear | None:
    """A Linear whose weight and bias start at 0 (None when it would have no outputs)."""
    if out_features == 0:
        return None
    layer = nn.Linear(in_features, out_features)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class MrsAdapter(nn.Module):
    """Modality-specific down/up projections around a bottleneck, with shared up channels.

    ``widths`` maps each modality to its residual width. With ``share_across_modalities``
    false, every modality gets its own "shared" projection (the ablation without sharing).
    """

    def __init__(
        self,
        widths: Mapping[str, int],
        bottleneck: int = 64,
        shared_dims: int = 64,
        dropout: float = 0.5,
        share_across_modalities: bool = True,
    ):
        super().__init__()
        if bottleneck < 1:
            raise ConfigError(f"petl options.bottleneck: expected a positive integer, got {bottleneck}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"petl options.dropout: expected a probability in [0, 1), got {dropout}")
        narrowest = min(widths.values())
        if not 0 <= shared_dims <= narrowest:
            raise ConfigError(
                f"petl options.shared_dims: expected 0..{narrowest} (the narrowest tower's width), got {shared_dims}"
            )
        self.widths = dict(widths)
        self.bottleneck = bottleneck
        self.shared_dims = shared_dims
        self.share_across_modalities = share_across_modalities

        self.down = nn.ModuleDict()
        for modality, width in self.widths.items():
            down = nn.Linear(width, bottleneck)  # weight: PyTorch default kaiming-uniform(a=sqrt(5))
            nn.init.zeros_(down.bias)
            self.down[modality] = down
        self.up = nn.ModuleDict()  # modality-specific up channels: bottleneck -> D - shared_dims
        for modality, width in self.widths.items():
            if (layer := _zero_linear(bottleneck, width - shared_dims)) is not None:
                self.up[modality] = layer
        if share_across_modalities:  # one bottleneck -> shared_dims projection for both towers
            self.up_shared: nn.Module | None = _zero_linear(bottleneck, shared_dims)
        else:
            self.up_shared = nn.ModuleDict()
            for modality in self.widths:
                if (layer := _zero_linear(bottleneck, shared_dims)) is not None:
                    self.up_shared[modality] = layer
        self.activation = nn.ReLU()
        self.dropout = nn.Dropout(dropout)

    def _shared(self, modality: str) -> nn.Module | None:
        if isinstance(self.up_shared, nn.ModuleDict):
            return self.up_shared[modality] if modality in self.up_shared else None
        return self.up_shared

    def forward(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """``x``: residual stream ``[..., D]`` of ``modality`` -> adapter output ``[..., D]``."""
        h = self.dropout(self.activation(self.down[modality](x)))  # [..., bottleneck]
        parts = []
        if modality in self.up:
            parts.append(self.up[modality](h))  # [..., D - shared_dims]
        shared = self._shared(modality)
        if shared is not None:
            parts.append(shared(h))  # [..., shared_dims]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)  # [..., D]


class AdaptedBlock(nn.Module):
    """An open_clip ``ResidualAttentionBlock`` with the MRS-Adapter parallel to its MLP.

    The stock block's children (``ln_1``, ``attn``, ``ls_1``, ``ln_2``, ``mlp``, ``ls_2``)
    are registered here under the same names, so state-dict keys do not change; the
    adapter is referenced, not registered (its owner, ``PetlModel``, registers it once).
    """

    def __init__(self, block: ResidualAttentionBlock, adapter: MrsAdapter, modality: str):
        super().__init__()
        if type(block) is not ResidualAttentionBlock or hasattr(block, "ln_1_kv"):
            raise ModelError(
                f"PE-RSITR adapts open_clip's self-attention ResidualAttentionBlock; got {type(block).__name__} "
                "(pick a standard CLIP ViT architecture, e.g. model.arch=ViT-B-32)"
            )
        for name, child in block.named_children():
            self.add_module(name, child)
        self.modality = modality
        # a reference, not a submodule: keeps the keys stock and the shared adapter single
        object.__setattr__(self, "_adapter", adapter)

    @property
    def adapter(self) -> MrsAdapter:
        return self._adapter

    # the stock block's own computations, run on the same (re-registered) submodules
    get_weight_dtype = ResidualAttentionBlock.get_weight_dtype  # Transformer.get_cast_dtype asks block 0
    attention = ResidualAttentionBlock.attention

    def forward(
        self,
        q_x: torch.Tensor,
        k_x: torch.Tensor | None = None,
        v_x: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``q_x``: ``[B, L, D]`` (same positional signature as the stock block, for checkpointing)."""
        if k_x is not None or v_x is not None:
            raise ModelError("AdaptedBlock supports self-attention only")
        x = q_x + self.ls_1(self.attention(q_x=self.ln_1(q_x), attn_mask=attn_mask))  # [B, L, D]
        return x + self.ls_2(self.mlp(self.ln_2(x))) + self._adapter(x, self.modality)  # [B, L, D]

    def extra_repr(self) -> str:
        return f"modality={self.modality!r}, adapter=shared MrsAdapter (not a submodule)"


def select_blocks(blocks: Sequence[int], depth: int, tower: str) -> list[int]:
    """Block indices to adapt in a tower of ``depth`` blocks (empty: all; negative: from the end)."""
    if not blocks:
        return list(range(depth))
    chosen = set()
    for index in blocks:
        if not -depth <= index < depth:
            raise ConfigError(
                f"petl options.blocks: index {index} is out of range for the {tower} tower's {depth} blocks"
            )
        chosen.add(index % depth)
    return sorted(chosen)


def tower_blocks(clip: nn.Module) -> dict[str, nn.ModuleList]:
    """The residual-block lists of an open_clip ``CLIP``'s image and text towers."""
    try:
        return {"image": clip.visual.transformer.resblocks, "text": clip.transformer.resblocks}
    except AttributeError:
        raise ModelError(
            f"PE-RSITR needs an open_clip CLIP with transformer towers; {type(clip).__name__} has none "
            "(pick a standard CLIP ViT architecture, e.g. model.arch=ViT-B-32)"
        ) from None


def tower_widths(clip: nn.Module) -> dict[str, int]:
    return {"image": int(clip.visual.transformer.width), "text": int(clip.transformer.width)}


def insert_adapter(clip: nn.Module, adapter: MrsAdapter, blocks: Sequence[int] = ()) -> dict[str, list[int]]:
    """Wrap the selected blocks of both towers (in place); returns the adapted indices per tower."""
    adapted: dict[str, list[int]] = {}
    for modality, resblocks in tower_blocks(clip).items():
        adapted[modality] = select_blocks(blocks, len(resblocks), modality)
        for index in adapted[modality]:
            resblocks[index] = AdaptedBlock(resblocks[index], adapter, modality)
    return adapted
