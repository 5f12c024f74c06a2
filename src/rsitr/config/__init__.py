"""Load ``params.yaml`` (plus ``--set`` overrides) into a typed, frozen ``RsitrParams``.

    >>> from rsitr import load_params
    >>> params = load_params("params.yaml", overrides=["train.epochs=2"])
    >>> params.variant("finetune").train.epochs
    2
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from rsitr.config.loader import apply_overrides, build_dataclass, coerce, flatten, to_dict
from rsitr.config.schema import (
    DATASET_FORMATS,
    AugmentParams,
    CoarseToFineParams,
    DatasetParams,
    DedupParams,
    EbakerOptions,
    EvalParams,
    FinetuneOptions,
    IngestParams,
    KeywordParams,
    ModelParams,
    PathsParams,
    PetlOptions,
    PromotionParams,
    ReportParams,
    RsitrParams,
    ServeParams,
    SplitParams,
    SynthParams,
    TextParams,
    TrackingParams,
    TrainParams,
    VariantParams,
    ZeroshotOptions,
    base_weights,
    method_options,
)
from rsitr.config.schema import PretrainParams, SynthCorpusParams
from rsitr.config.methods import METHODS, MethodSpec, method_spec, register_method, unregister_method
from rsitr.errors import ConfigError, unknown_name

__all__ = [
    "AugmentParams",
    "DATASET_FORMATS",
    "CoarseToFineParams",
    "METHODS",
    "MethodSpec",
    "DatasetParams",
    "DedupParams",
    "EbakerOptions",
    "EvalParams",
    "FinetuneOptions",
    "IngestParams",
    "KeywordParams",
    "ModelParams",
    "PathsParams",
    "PetlOptions",
    "PromotionParams",
    "ReportParams",
    "RsitrParams",
    "ServeParams",
    "SplitParams",
    "SynthParams",
    "TextParams",
    "TrackingParams",
    "TrainParams",
    "VariantParams",
    "ZeroshotOptions",
    "base_weights",
    "PretrainParams",
    "SynthCorpusParams",
    "flatten",
    "load_params",
    "method_spec",
    "register_method",
    "unregister_method",
    "method_options",
    "params_from_dict",
    "to_dict",
]

_SECTIONS: dict[str, type] = {
    "paths": PathsParams,
    "synth": SynthParams,
    "ingest": IngestParams,
    "dedup": DedupParams,
    "split": SplitParams,
    "keywords": KeywordParams,
    "text": TextParams,
    "model": ModelParams,
    "train": TrainParams,
    "eval": EvalParams,
    "tracking": TrackingParams,
    "promotion": PromotionParams,
    "c2f": CoarseToFineParams,
    "report": ReportParams,
    "serve": ServeParams,
    "synth_corpus": SynthCorpusParams,
    "pretrain": PretrainParams,
}
_TOP_LEVEL_KEYS = sorted([*_SECTIONS, "seed", "datasets", "variants"])
_VARIANT_KEYS = ("method", "train", "options", "eval", "benchmark", "c2f")
_VARIANT_RUNS = ("default", "ablations", "off")


def load_params(path: str | Path = "params.yaml", overrides: Sequence[str] = ()) -> RsitrParams:
    """Read ``path``, apply ``section.key=value`` overrides, and validate everything."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {str(path)!r} not found; run from the repository root or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return params_from_dict(apply_overrides(raw, overrides))


def params_from_dict(raw: Mapping[str, Any]) -> RsitrParams:
    """Validate a nested dict (as read from YAML) into ``RsitrParams``."""
    unknown = sorted(set(raw) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in params; valid top-level keys: {', '.join(_TOP_LEVEL_KEYS)}")
    sections = {name: build_dataclass(cls, raw.get(name), name) for name, cls in _SECTIONS.items()}
    seed = coerce(int, raw.get("seed", 0), "seed")
    datasets = _build_datasets(raw.get("datasets") or [])
    raw_train = raw.get("train") or {}
    raw_eval = raw.get("eval") or {}
    variants = _build_variants(raw.get("variants") or {}, raw_train, raw_eval)
    params = RsitrParams(seed=seed, datasets=datasets, variants=types.MappingProxyType(variants), **sections)
    _check_cross_references(params)
    return params


def _build_datasets(raw: Any) -> tuple[DatasetParams, ...]:
    if not isinstance(raw, list):
        raise ConfigError("datasets: expected a list of {name, format, root, images} entries")
    datasets = tuple(build_dataclass(DatasetParams, entry, f"datasets[{i}]") for i, entry in enumerate(raw))
    names = [d.name for d in datasets]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"datasets: the name {name!r} is used twice; dataset names must be unique")
    return datasets


def _merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _build_variants(raw: Any, raw_train: Mapping[str, Any], raw_eval: Mapping[str, Any]) -> dict[str, VariantParams]:
    if not isinstance(raw, Mapping):
        raise ConfigError("variants: expected a mapping of variant name -> {method, train, options}")
    variants: dict[str, VariantParams] = {}
    for name, entry in raw.items():
        path = f"variants.{name}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{path}: expected a mapping with keys {', '.join(_VARIANT_KEYS)}")
        unknown = sorted(set(entry) - set(_VARIANT_KEYS))
        if unknown:
            raise ConfigError(f"unknown key '{path}.{unknown[0]}' in params; valid keys of {path}: {', '.join(_VARIANT_KEYS)}")
        method = entry.get("method")
        if not isinstance(method, str):
            raise ConfigError(f"{path}.method: expected a method name; valid methods: {', '.join(sorted(METHODS))}")
        try:
            spec = method_spec(method)
        except ConfigError as exc:
            raise ConfigError(f"{path}.method: {exc}") from None
        train = build_dataclass(TrainParams, _merge(raw_train, entry.get("train") or {}), f"{path}.train")
        if train.budget != build_dataclass(TrainParams, raw_train, "train").budget:
            raise ConfigError(f"{path}.train.budget: the budget factor is one for every variant (so their optimizer "
                              "steps keep the papers' ratio); set train.budget instead")
        evaluation = build_dataclass(EvalParams, _merge(raw_eval, entry.get("eval") or {}), f"{path}.eval")
        options = build_dataclass(spec.options, entry.get("options"), f"{path}.options")
        run = entry.get("benchmark", "default")
        if run not in _VARIANT_RUNS:
            raise ConfigError(f"{path}.benchmark: " + unknown_name("benchmark run", str(run), _VARIANT_RUNS))
        c2f = coerce(bool, entry.get("c2f", False), f"{path}.c2f")
        variants[str(name)] = VariantParams(name=str(name), method=method, train=train, options=options,
                                            eval=evaluation, benchmark=run, c2f=c2f)
    return variants


def _check_cross_references(params: RsitrParams) -> None:
    names = {d.name for d in params.datasets}
    for scope, evaluation, train in [("", params.eval, params.train)] + [
        (f"variants.{v.name}.", v.eval, v.train) for v in params.variants.values()
    ]:
        for test_set in evaluation.test_sets:
            if test_set not in names:
                raise ConfigError(f"{scope}eval.test_sets: " + unknown_name("dataset", test_set, names))
        for dataset in train.datasets:
            if dataset not in names:
                raise ConfigError(f"{scope}train.datasets: " + unknown_name("dataset", dataset, names))
    for variant in params.variants.values():
        _check_init_chain(params, variant)


def _check_init_chain(params: RsitrParams, variant: VariantParams) -> None:
    """``train.init_from_variant`` names a training variant, not itself, without a cycle, and not with init_from."""
    seen = [variant.name]
    current = variant
    while current.train.init_from_variant:
        key = f"variants.{current.name}.train.init_from_variant"
        parent = current.train.init_from_variant
        if parent not in params.variants:
            raise ConfigError(f"{key}: " + unknown_name("variant", parent, list(params.variants)))
        if current.train.init_from:
            raise ConfigError(f"{key}: set either init_from (a file) or init_from_variant, not both")
        if parent in seen:
            raise ConfigError(f"{key}: the chain {' -> '.join([*seen, parent])} is a cycle")
        if not params.variants[parent].trains:
            raise ConfigError(f"{key}: variant {parent!r} does not train (method {params.variants[parent].method} "
                              "is evaluation only); name a trained variant")
        seen.append(parent)
        current = params.variants[parent]

