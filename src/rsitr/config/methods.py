"""The method registry: one ``MethodSpec`` per training method, the only place a method is declared.

A method is its options (the frozen dataclass of ``variants.<v>.options`` in params.yaml), its
model class, its loss class (``None``: evaluation only) and the flags the pipeline asks instead
of testing a method's name. Every other registry is derived from ``METHODS``: the config reads
a variant's options class from it, ``rsitr.models.build_model`` its model and
``rsitr.losses.build_variant_loss`` its loss. The built-in methods declare themselves in
``rsitr.methods`` (one module each); a new method is its own files plus one
``register_method(MethodSpec(...))`` call::

    register_method(MethodSpec(name="toy", options=ToyOptions, model=ToyModel, loss=ToyLoss,
                               description="a toy method"))

The spec lives at the config layer so that parsing params.yaml can find the options class; it
holds the model and loss as plain callables, so this module imports neither.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rsitr.errors import ConfigError, unknown_name

__all__ = ["METHODS", "MethodSpec", "method_spec", "register_method", "unregister_method"]


def _never(options: Any) -> bool:
    return False


@dataclass(frozen=True)
class MethodSpec:
    """A training method, declared once.

    ``model(bundle, variant, params)`` builds the retrieval model (a ``RetrievalModel``);
    ``loss(variant=...)`` the trainer's loss (a ``rsitr.losses.TrainerLoss``), ``None`` for an
    evaluation-only method. ``uses_keywords(options)``: whether the variant reads the keyword
    list (then the keywords config enters its fingerprint and the trainer hands the list to the
    model's ``set_keywords``).
    """

    name: str
    options: type
    model: Callable[..., Any]
    loss: Callable[..., Any] | None = None
    description: str = ""
    uses_keywords: Callable[[Any], bool] = _never

    @property
    def trains(self) -> bool:
        return self.loss is not None

    def validate(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ConfigError(f"method name {self.name!r}: expected an identifier such as 'finetune'")
        if not (isinstance(self.options, type) and dataclasses.is_dataclass(self.options)):
            raise ConfigError(f"method {self.name}: options must be a dataclass, got {self.options!r}")
        if not self.options.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise ConfigError(f"method {self.name}: options {self.options.__name__} must be a frozen dataclass")


METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to ``METHODS``; registering another spec under a taken name is an error."""
    spec.validate()
    existing = METHODS.get(spec.name)
    if existing is not None and existing != spec:
        raise ConfigError(f"method {spec.name!r} is already registered ({existing.description or existing.model}); "
                          "choose another name")
    METHODS[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Remove a method (tests that register a toy method clean up with this)."""
    METHODS.pop(name, None)


def method_spec(name: str) -> MethodSpec:
    """The spec of ``name``; an unknown name lists the registered ones."""
    if name not in METHODS:
        hint = "" if METHODS else " (no method is registered: import rsitr.methods, or use rsitr.load_params)"
        raise ConfigError(unknown_name("method", name, list(METHODS)) + hint)
    return METHODS[name]
