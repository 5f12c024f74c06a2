"""CLIP full fine-tune (seed 000): every weight trains, with CLIP's learnable temperature."""

from __future__ import annotations

from rsitr.models.retrieval_model import RetrievalModel


class FinetuneModel(RetrievalModel):
    def configure_trainable(self) -> None:
        super().configure_trainable()
        options = self.variant.options
        self.init_temperature(options.init_temperature, options.learnable_temperature)
