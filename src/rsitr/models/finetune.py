"""CLIP full fine-tune (Radford et al. 2021): every weight trains, with CLIP's learnable temperature."""

from __future__ import annotations

from rsitr.config import FinetuneOptions, method_options
from rsitr.models.retrieval_model import RetrievalModel


class FinetuneModel(RetrievalModel):
    def configure_trainable(self) -> None:
        super().configure_trainable()
        options = method_options(self.variant, FinetuneOptions)
        if not self.model_params.pretrained:  # pretrained weights bring their own temperature
            self.init_temperature(options.init_temperature, options.learnable_temperature)
        else:
            self.clip.logit_scale.requires_grad_(options.learnable_temperature)
