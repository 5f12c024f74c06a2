"""The built-in methods, one declaration each (``rsitr.config.methods.MethodSpec``).

Importing this package registers them; ``rsitr.load_params``, the CLI and the application
import it before reading params.yaml. Each module holds one ``register_method`` call and
cites its paper; a new method is its own model, loss and options plus a module like these.

=========  ===================================================================
zeroshot   CLIP zero-shot (Radford et al. 2021): evaluation only
finetune   CLIP full fine-tune with symmetric InfoNCE
petl       PE-RSITR (Yuan, Zhan, Xiong, TGRS 2023): MRS-Adapter + HMMC
ebaker     EBAKER (ACM MM 2024): global + local alignment, EBA, KER
cfitr      CFITR (Zhou, Wu, Deng, GRSL 2024): hash shortlist, single-stream re-scoring
=========  ===================================================================
"""

from __future__ import annotations

from rsitr.config import METHODS, MethodSpec, method_spec, register_method
from rsitr.methods import cfitr, ebaker, finetune, petl, zeroshot

__all__ = ["METHODS", "MethodSpec", "cfitr", "ebaker", "finetune", "method_spec", "petl", "register_method", "zeroshot"]
