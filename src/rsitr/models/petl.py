"""PE-RSITR: a shared MRS-Adapter on a frozen CLIP, trained with the HMMC loss.

Yuan, Zhan, Xiong, "Parameter-Efficient Transfer Learning for Remote Sensing Image-Text
Retrieval", IEEE TGRS 2023 (arXiv:2308.12509).

* The whole CLIP (both towers, projections, temperature) is frozen; only the adapter
  trains (161,088 parameters on ViT-B/32 with bottleneck 64 and 64 shared channels).
* One ``MrsAdapter`` sits parallel to the MLP of every selected residual block of both
  towers (``rsitr.models.mrs_adapter``); a fresh adapter outputs 0, so before training the
  model is the stock CLIP.
* For the HMMC loss's intra-modal terms, ``forward`` (in training mode) encodes the batch
  a second time with Dropout(``token_dropout``) on the token embeddings: image tokens after
  ``ln_pre``, text tokens after the positional embeddings are added.
* Checkpoints hold only the adapter (``saved_state_dict``); the base model is named by
  the checkpoint's ``base`` (architecture + pretrained source), rebuilt from it and checked
  against a saved fingerprint. A randomly initialised base (``model.pretrained: ""``) is
  seeded by ``params.seed`` (``rsitr.models.build_model``), so it is rebuilt exactly too.

Paper vs released code and rsitr's defaults: docs/methods.md (PE-RSITR).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transformer import text_global_pool
from torch import nn

from rsitr.config import PetlOptions, RsitrParams, VariantParams, method_options
from rsitr.errors import ModelError
from rsitr.models.factory import ClipBundle
from rsitr.models.mrs_adapter import MrsAdapter, insert_adapter, tower_blocks, tower_widths
from rsitr.models.retrieval_model import Features, RetrievalModel
from rsitr.models.text_tower import project_text, text_tower, trim_padding

ADAPTER_PREFIX = "adapter."
CLIP_PREFIX = "clip."
BASE_FINGERPRINT = "base_fingerprint"


class PetlModel(RetrievalModel):
    """Frozen open_clip CLIP + one shared MRS-Adapter in both towers."""

    def __init__(self, bundle: ClipBundle, variant: VariantParams, params: RsitrParams):
        super().__init__(bundle, variant, params)
        options: PetlOptions = method_options(variant, PetlOptions)
        tower_blocks(self.clip)  # fails early, with advice, on a CLIP without transformer towers
        self.adapter = MrsAdapter(
            tower_widths(self.clip),
            bottleneck=options.bottleneck,
            shared_dims=options.shared_dims,
            dropout=options.dropout,
            share_across_modalities=options.share_across_modalities,
        )
        self.adapted_blocks = insert_adapter(self.clip, self.adapter, options.blocks)
        self.token_dropout = nn.Dropout(options.token_dropout)

    # ------------------------------------------------------------------ encoders
    def encode_image_features(self, images: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """Normalised image embeddings ``[B, D]``; ``augment`` drops image tokens after ``ln_pre``."""
        visual = self.clip.visual
        x = visual._embeds(images)  # [B, 1+P, W] (patches + CLS + positions, ln_pre)
        if augment:
            x = self.token_dropout(x)
        x = visual.transformer(x)  # [B, 1+P, W], adapter inside every adapted block
        pooled, _ = visual._pool(x)  # [B, W]
        if visual.proj is not None:
            pooled = pooled @ visual.proj  # [B, D]
        return F.normalize(pooled, dim=-1)

    def encode_text_features(self, tokens: torch.Tensor, augment: bool = False) -> torch.Tensor:
        """Normalised text embeddings ``[B, D]``; ``augment`` drops token embeddings after positions."""
        clip = self.clip
        tokens = trim_padding(clip, tokens)  # [B, L'] (exact: causal tower, EOT pooling)
        x = text_tower(clip, tokens, after_positions=self.token_dropout if augment else None)  # [B, L, W]
        pooled = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
        pooled = project_text(clip, pooled)  # [B, W] -> [B, D]
        return F.normalize(pooled, dim=-1)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, **batch: Any) -> Features:
        image_features = self.encode_image_features(images)  # [B, D]
        text_features = self.encode_text_features(tokens)  # [B, D]
        # second pass (training only): token dropout and fresh adapter dropout; skipped for a
        # modality whose intra-modal HMMC term is switched off (weight 0). At evaluation the views coincide.
        weights = self.variant.options.weights
        image_aug, text_aug = image_features, text_features
        if self.training and weights.intra_image != 0:
            image_aug = self.encode_image_features(images, augment=True)  # [B, D]
        if self.training and weights.intra_text != 0:
            text_aug = self.encode_text_features(tokens, augment=True)  # [B, D]
        return {
            "image_features": image_features,
            "text_features": text_features,
            "image_features_aug": image_aug,
            "text_features_aug": text_aug,
            "logit_scale": self.logit_scale(),
        }

    # ------------------------------------------------------------------ bookkeeping
    def configure_trainable(self) -> None:
        """Freeze the whole CLIP (temperature included); only the adapter trains."""
        for parameter in self.clip.parameters():
            parameter.requires_grad_(False)
        for parameter in self.adapter.parameters():
            parameter.requires_grad_(True)

    def components(self) -> dict[str, nn.Module]:
        return {**super().components(), "adapter": self.adapter}

    def saved_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint must hold: the adapter (``adapter.*``) and a check, or the backbone, of the base.

        The base is rebuilt from the checkpoint's ``base`` reference (pretrained weights, or
        the seeded random initialisation), so only the adapter is saved, plus the base's
        fingerprint (``base_fingerprint``) that loading verifies.
        """
        state = {ADAPTER_PREFIX + k: v.detach().clone() for k, v in self.adapter.state_dict().items()}
        state[BASE_FINGERPRINT] = backbone_fingerprint(self.clip)
        return state

    def load_saved_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load a ``saved_state_dict``: the adapter strictly; the backbone if saved, else check the base."""
        expected = {ADAPTER_PREFIX + k for k in self.adapter.state_dict()}
        adapter_keys = {k for k in state if k.startswith(ADAPTER_PREFIX)}
        clip_keys = {k for k in state if k.startswith(CLIP_PREFIX)}
        missing = sorted(expected - adapter_keys)
        unexpected = sorted(set(state) - expected - clip_keys - {BASE_FINGERPRINT})
        if missing or unexpected:
            hint = " (no adapter: was it trained by another method?)" if not adapter_keys else ""
            raise ModelError(
                f"PE-RSITR checkpoint does not fit this adapter: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}{hint}"
            )
        if clip_keys:
            result = self.clip.load_state_dict({k[len(CLIP_PREFIX):]: state[k] for k in clip_keys}, strict=False)
            if result.missing_keys or result.unexpected_keys:
                raise ModelError(
                    f"PE-RSITR checkpoint's backbone does not fit model.arch={self.model_params.arch!r}: missing "
                    f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
                )
        elif BASE_FINGERPRINT in state:
            self._check_base(state[BASE_FINGERPRINT])
        try:
            self.adapter.load_state_dict({k[len(ADAPTER_PREFIX):]: state[k] for k in adapter_keys}, strict=True)
        except RuntimeError as exc:  # shape mismatch: bottleneck / shared_dims / arch differ
            raise ModelError(
                f"PE-RSITR checkpoint does not fit this adapter (check the petl options and model.arch): {exc}"
            ) from None

    def _check_base(self, saved: torch.Tensor) -> None:
        current = backbone_fingerprint(self.clip)
        if not torch.allclose(saved.to(current), current, rtol=1e-5, atol=1e-6):
            raise ModelError(
                "PE-RSITR checkpoint's adapter was trained on different base weights than "
                f"model.pretrained={self.model_params.pretrained!r} gives (fingerprint {saved.tolist()} vs "
                f"{current.tolist()}); point model.pretrained at the weights it was trained on"
            )


def backbone_fingerprint(clip: nn.Module) -> torch.Tensor:
    """``[2]`` float64: sum and sum of squares of every floating backbone tensor (a cheap identity check)."""
    total = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for value in clip.state_dict().values():
            if value.is_floating_point():
                value = value.double()
                total += torch.stack([value.sum(), value.square().sum()]).cpu()
    return total
