"""The technique registry: every technique, graft's own included, arrives through the
`graft.techniques` entry-point group, so a third-party package registers the same way.

An entry point names a `Technique` (or a function returning one). A plugin that fails to import
is listed as broken instead of breaking every command.
"""

from __future__ import annotations

from dataclasses import replace
from importlib.metadata import entry_points

from graft.errors import TechniqueUnavailableError
from graft.techniques.technique import FAMILIES, Technique

GROUP = "graft.techniques"

_registry: dict[str, Technique] | None = None
_broken: dict[str, str] = {}  # entry-point name -> why it could not be loaded


def register(technique: Technique) -> Technique:
    """Add a technique at runtime (tests, notebooks); packages should use the entry point."""
    _validate(technique)
    _load()[technique.name] = technique
    return technique


def available() -> dict[str, Technique]:
    return dict(sorted(_load().items()))


def broken() -> dict[str, str]:
    _load()
    return dict(_broken)


def get_technique(name: str) -> Technique:
    techniques = _load()
    if name in techniques:
        return techniques[name]
    if name in _broken:
        raise TechniqueUnavailableError(f"technique '{name}' could not be loaded: {_broken[name]}")
    raise TechniqueUnavailableError(
        f"unknown technique '{name}'",
        hint="known: " + ", ".join(sorted(techniques)) if techniques else
        "no techniques are registered: is graft installed (pip install -e .)? Entry points need an install",
    )


def reload() -> None:
    """Forget what was loaded (after installing a plugin into a running process)."""
    global _registry
    _registry = None
    _broken.clear()


def _load() -> dict[str, Technique]:
    global _registry
    if _registry is not None:
        return _registry
    found: dict[str, Technique] = {}
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
            technique = obj() if callable(obj) and not isinstance(obj, Technique) else obj
            if not isinstance(technique, Technique):
                raise TypeError(f"{ep.value} is a {type(technique).__name__}, not a graft Technique")
            _validate(technique)
        except Exception as e:  # a broken plugin must not take the others down
            _broken[ep.name] = f"{ep.value}: {type(e).__name__}: {e}"
            continue
        if technique.name in found:
            _broken[ep.name] = f"{ep.value}: name '{technique.name}' is already taken by {found[technique.name].source}"
            continue
        dist = getattr(ep, "dist", None)
        found[technique.name] = replace(technique, source=dist.name if dist else ep.value)
    _registry = found
    return found


def _validate(t: Technique) -> None:
    if t.family not in FAMILIES:
        raise ValueError(f"technique '{t.name}': family '{t.family}' is not one of {', '.join(FAMILIES)}")
    if not t.name or t.name != t.name.strip().lower() or " " in t.name:
        raise ValueError(f"technique name {t.name!r}: use lower-case letters, digits and '-'")
