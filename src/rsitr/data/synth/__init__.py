"""Synthetic remote-sensing image-caption benchmark with known ground truth.

``generate_benchmark(out_dir, n_images, seed, BenchmarkOptions(...))`` draws aerial-looking scenes of
``SCENE_CLASSES`` (numpy + Pillow), writes them with five English (and Arabic)
captions each in the real RSICD precomp and Sydney Karpathy-JSON layouts, plants
fine-grained twins, weak captions and cross-dataset near-duplicates, and records
all of it in ``ground_truth.json``. See ``generator.py`` for the guarantees.
"""

from rsitr.data.synth.classes import SCENE_CLASSES
from rsitr.data.synth.generator import generate_benchmark
from rsitr.data.synth.settings import BenchmarkOptions

__all__ = ["SCENE_CLASSES", "BenchmarkOptions", "generate_benchmark"]
