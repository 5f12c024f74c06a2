"""Exceptions rsitr raises for bad input.

Every error names the offending item and says how to fix it. The CLI turns a
``RsitrError`` into a one-line message and exit code 2 instead of a traceback.
"""

from __future__ import annotations


class RsitrError(Exception):
    """Base class: a user-facing error with an actionable message."""

    exit_code: int = 2


class ConfigError(RsitrError):
    """params.yaml or a ``--set`` override is invalid (unknown key, wrong type, unknown name)."""


class DataError(RsitrError):
    """A dataset on disk is unusable (missing/corrupt image, count mismatch, empty caption)."""


class TrackingError(RsitrError):
    """The MLflow tracking server or model registry cannot be used."""


class ModelError(RsitrError):
    """A model, checkpoint or pretrained tag cannot be built or loaded."""


def unknown_name(kind: str, name: str, valid: "list[str] | tuple[str, ...] | set[str]") -> str:
    """Message for an unknown registry name, listing the valid ones."""
    choices = ", ".join(sorted(valid))
    return f"unknown {kind} {name!r}; valid {kind}s: {choices}"


class Terminated(BaseException):
    """SIGTERM during a long step: unwinds like Ctrl-C (runs marked KILLED, checkpoints kept)."""
