"""Synthetic web-style image-caption corpus for continual CLIP pretraining.

Modelled on the caption corpora behind RemoteCLIP (Liu et al. 2024, "RemoteCLIP:
A Vision Language Foundation Model for Remote Sensing") and GeoRSCLIP / RS5M
(Zhang et al. 2024, "RS5M and GeoRSCLIP: A Large Scale Vision-Language Dataset
and A Large Vision-Language Model for Remote Sensing"): one short, noisy,
alt-text-like English caption per image, some of them wrong. Scenes are drawn and
painted with the synthetic benchmark's scene model and renderer
(``rsitr.data.synth``) but from the corpus's own seed streams, so no corpus image
equals a benchmark image. See ``generator.py`` for the on-disk layout.
"""

from rsitr.data.synth_corpus.generator import CorpusOptions, generate_corpus

__all__ = ["CorpusOptions", "generate_corpus"]
