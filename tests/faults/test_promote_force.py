"""Trial 7: ``rsitr promote --force`` without ``--reason`` is refused; nothing moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsitr.config import load_params
from rsitr.errors import ConfigError
from rsitr.tracking.registry import promote


@pytest.mark.parametrize("reason", ["", "   "])
def test_force_needs_a_reason(project: Path, reason: str) -> None:
    with pytest.raises(ConfigError, match=r"--force .*needs a reason.*--reason"):
        promote(load_params(project), "finetune", force=True, reason=reason)
