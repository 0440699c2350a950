"""The technique registry. A technique turns a loaded model into a trainable one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from graft.errors import TechniqueUnavailableError


@dataclass(frozen=True)
class Technique:
    name: str
    family: str  # reparametrisation | additive | prompt | selective | quantised | full
    apply: Callable[[Any, Any], Any]  # (model, technique config) -> trainable model
    description: str = ""


_REGISTRY: dict[str, Technique] = {}


def register(technique: Technique) -> Technique:
    _REGISTRY[technique.name] = technique
    return technique


def available() -> dict[str, Technique]:
    _load_builtins()
    return dict(_REGISTRY)


def get_technique(name: str) -> Technique:
    _load_builtins()
    if name not in _REGISTRY:
        raise TechniqueUnavailableError(
            f"unknown technique '{name}'; available: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def _load_builtins() -> None:
    from graft.techniques import lora  # noqa: F401  (registers itself)
