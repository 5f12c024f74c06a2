"""Validation curves: each variant's val mR after each data pass, as plain text lines.

The trainer validates after every pass over the training captions; a run is its paper's epochs
times the budget factor (``rsitr.training.schedule``), so each point is labelled with the
paper epoch it reached (``2.40: 31.05`` = val mR 31.05 after 2.4 of the paper's epochs).
The trainer's summary (``train.json``, ``rsitr.training.trainer.write_train_summary``) holds
``val_curve`` (one ``{"epoch", "paper_epoch", "val_mR"}`` per pass), ``best_epoch`` and ``optimizer_steps``;
the leaderboard builds the same shape from a run's MLflow ``val_mR`` history
(``curve_from_history``). This module only formats them (the application finds the files).
An evaluation-only variant has an empty curve.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PER_LINE = 10  # epochs per line, so a 30-epoch schedule stays readable


def curve_of(summary: Mapping[str, Any]) -> list[tuple[int, float, float]]:
    """``[(pass, paper epoch, val mR), ...]`` of one train summary, in pass order."""
    return sorted((int(point["epoch"]), float(point.get("paper_epoch", point["epoch"])), float(point["val_mR"]))
                  for point in summary.get("val_curve") or [])


def curve_from_history(history: Iterable[Any], optimizer_steps: Any = None,
                       paper_epochs: Iterable[Any] = ()) -> dict[str, Any]:
    """A summary-shaped curve from MLflow ``val_mR`` metrics (``step`` = data pass; a re-logged pass keeps
    its last value) and the ``paper_epoch`` metric logged beside each; the best pass is the first
    maximum, as the trainer keeps it."""
    by_epoch = {int(metric.step): float(metric.value) for metric in sorted(history, key=lambda m: m.timestamp)}
    reached = {int(metric.step): float(metric.value) for metric in sorted(paper_epochs, key=lambda m: m.timestamp)}
    curve = [{"epoch": epoch, "paper_epoch": reached.get(epoch, float(epoch)), "val_mR": value}
             for epoch, value in sorted(by_epoch.items())]
    best = max(curve, key=lambda point: point["val_mR"])["epoch"] if curve else -1
    steps = None if optimizer_steps is None or optimizer_steps != optimizer_steps else int(optimizer_steps)  # NaN
    return {"val_curve": curve, "best_epoch": best, "optimizer_steps": steps, "epochs": len(curve)}


def _points(curve: list[tuple[int, float, float]], best: int) -> list[str]:
    return [f"{paper:.2f}: {value:.2f}{'*' if epoch == best else ''}" for epoch, paper, value in curve]


def curve_lines(summaries: Mapping[str, Mapping[str, Any]], indent: str = "  ") -> list[str]:
    """One entry per variant, ``paper epoch reached: val mR`` after each data pass (``*`` marks the best
    pass, the kept checkpoint)."""
    width = max((len(name) for name in summaries), default=0)
    lines = []
    for name, summary in sorted(summaries.items()):
        curve, steps = curve_of(summary), summary.get("optimizer_steps")
        head = f"{indent}{name:<{width}}  "
        if not curve:
            trained = summary.get("epochs", 0) or steps
            lines.append(head + ("no per-epoch validation curve stored" if trained else "evaluation only: no training"))
            continue
        about = f"  ({steps:,} optimizer steps)" if steps is not None else ""
        points = _points(curve, int(summary.get("best_epoch", -1)))
        chunks = ["  ".join(points[i:i + PER_LINE]) for i in range(0, len(points), PER_LINE)]
        lines += [head + chunks[0]] + [" " * len(head) + chunk for chunk in chunks[1:]]
        lines[-1] += about
    return lines
