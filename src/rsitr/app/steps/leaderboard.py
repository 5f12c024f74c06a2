"""The leaderboard step: ``reports/leaderboard.{md,csv}`` and ``reports/claims.csv`` from MLflow.

``rsitr.tracking.leaderboard`` reads the measured rows and each row's stored per-query ranks
(run artifacts), adds the paired bootstrap CIs (``report.*`` in params.yaml) and builds the
claims table (``rsitr.tracking.claims``); nothing is retrained or re-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable

from rsitr.app.core.paths import ProjectPaths
from rsitr.config import RsitrParams
from rsitr.tracking.leaderboard import LeaderboardFiles, write_leaderboard


def run_leaderboard(params: RsitrParams, *, all_runs: bool = False, variants: Iterable[str] = ()) -> LeaderboardFiles:
    """Write the leaderboard and the claims table into ``paths.reports`` (``ProjectPaths.claims``)."""
    return write_leaderboard(params, ProjectPaths.of(params).leaderboard_dir, all_runs=all_runs, variants=variants)
