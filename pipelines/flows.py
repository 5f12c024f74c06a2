"""Prefect entry points of the deployments (``pipelines/prefect.yaml``): rsitr's flows.

The flows live in ``rsitr.app.flows``. A deployment's pull step clones the repository at a
pinned commit; this file puts that clone's ``src/`` first on ``sys.path`` so the flow runs
the pinned code, not whatever rsitr the worker's environment happens to have installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SOURCE = Path(__file__).resolve().parents[1] / "src"
if _SOURCE.is_dir() and str(_SOURCE) not in sys.path:
    sys.path.insert(0, str(_SOURCE))

from rsitr.app.flows import benchmark, one_variant, promote_champion  # noqa: E402

__all__ = ["benchmark", "one_variant", "promote_champion"]
