"""EBAKER ("Eliminate Before Align: A Remote Sensing Image-Text Retrieval Framework with
Keyword Explicit Reasoning", ACM MM 2024): global + local alignment, EBA and KER."""

from __future__ import annotations

from typing import Any

from rsitr.config import EbakerOptions, MethodSpec, register_method
from rsitr.losses.ebaker import EbakerLoss
from rsitr.models.ebaker import EbakerModel


def _reads_keywords(options: Any) -> bool:
    """KER masks the keyword list's words, so only a variant with ``ker`` on reads it."""
    return bool(options.ker)


SPEC = register_method(MethodSpec(
    name="ebaker",
    options=EbakerOptions,
    model=EbakerModel,
    loss=EbakerLoss,
    description="EBAKER: global+local, EBA, KER",
    uses_keywords=_reads_keywords,
))
