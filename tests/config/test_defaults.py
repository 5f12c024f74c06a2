"""One source of defaults: every default in the schema equals params.yaml's value, or params.yaml omits it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from rsitr.config import METHODS, to_dict
from rsitr.config.__init__ import _SECTIONS

REPO = Path(__file__).resolve().parents[2]


def _default(cls: type) -> dict[str, Any] | None:
    try:
        return to_dict(cls())
    except TypeError:  # a dataclass with required fields (DatasetParams) has no defaults to compare
        return None


def _disagreements(path: str, default: Any, value: Any) -> list[str]:
    if isinstance(value, dict) and isinstance(default, dict):
        return [hit for key in value if key in default
                for hit in _disagreements(f"{path}.{key}", default[key], value[key])]
    as_list = list(value) if isinstance(value, (list, tuple)) else value
    expected = list(default) if isinstance(default, (list, tuple)) else default
    return [] if as_list == expected else [f"{path}: schema {expected!r}, params.yaml {as_list!r}"]


def test_schema_defaults_equal_params_yaml():
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    problems = []
    for section, cls in _SECTIONS.items():
        default = _default(cls)
        if default is not None and section in raw:
            problems += _disagreements(section, default, raw[section])
    assert problems == []


def test_no_variant_repeats_a_value_its_method_already_defaults_to():
    """A variant's options in params.yaml are what differs on purpose from its method's (paper) defaults."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    repeated = []
    for name, entry in raw["variants"].items():
        defaults = to_dict(METHODS[entry["method"]].options())
        for key, value in (entry.get("options") or {}).items():
            if not isinstance(value, dict) and defaults.get(key) == value:
                repeated.append(f"variants.{name}.options.{key}")
    assert repeated == []


def test_the_check_catches_a_disagreement():
    assert _disagreements("train", {"epochs": 6, "augment": {"hflip": True}}, {"epochs": 2, "augment": {"hflip": True}}) \
        == ["train.epochs: schema 6, params.yaml 2"]
