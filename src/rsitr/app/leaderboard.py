"""The leaderboard step: ``reports/leaderboard.{md,csv}`` from MLflow (``rsitr.tracking.leaderboard``)."""

from __future__ import annotations

from collections.abc import Iterable

from rsitr.app.paths import ProjectPaths
from rsitr.config import RsitrParams
from rsitr.tracking.leaderboard import LeaderboardFiles, write_leaderboard


def run_leaderboard(params: RsitrParams, *, all_runs: bool = False, variants: Iterable[str] = ()) -> LeaderboardFiles:
    return write_leaderboard(params, ProjectPaths.of(params).leaderboard_dir, all_runs=all_runs, variants=variants)
