"""A benchmark matrix: one base run config, axes of values, expanded into cells.

    name: smollm2-techniques
    model: {name: smollm2-135m-instruct}
    data: {path: ../shared/data/alpaca_5000/alpaca_5000.json, limit: 200, max_length: 256}
    train: {max_steps: 10, batch_size: 4}
    matrix:                       # dotted config keys -> values; every combination is a cell
      technique.name: [lora, dora, ia3]
      technique.r: [8, 16]        # technique options apply to the techniques that have them
      train.optimizer: [adamw, sgd]
    exclude:                      # optional: drop combinations that match all the given keys
      - {technique.name: ia3, train.optimizer: sgd}
    cells:                        # optional: extra cells, each its own overrides
      - {technique.name: full, train.optimizer: sgd}

Every cell is validated as a RunConfig when the matrix expands, so a typo fails before any cell
runs, naming the cell. A cell's id is a hash of its whole config: re-running a matrix recognises
finished cells even when the axes are reordered.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from graft.config import RunConfig, apply_overrides
from graft.errors import ConfigError
from graft.paths import safe_name

SPEC_KEYS = {"name", "matrix", "exclude", "cells"}
ALIASES = {"technique": "technique.name", "techniques": "technique.name"}


@dataclass
class Cell:
    index: int
    params: dict[str, Any]  # the swept values that apply to this cell
    config: RunConfig

    @property
    def id(self) -> str:
        return cell_id(self.config)

    def label(self, varying: list[str]) -> str:
        parts = []
        for key in varying:
            if key not in self.params:
                continue
            value = self.params[key]
            parts.append(str(value) if key == "technique.name" else f"{key.rsplit('.', 1)[-1]}={_short(value)}")
        return " ".join(parts) or self.config.technique.name


@dataclass
class Matrix:
    name: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    exclude: list[dict[str, Any]]
    extra: list[dict[str, Any]]

    @classmethod
    def load(cls, path: str | Path) -> "Matrix":
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such matrix file") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        return cls.from_dict(raw, source=str(path), default_name=path.stem)

    @classmethod
    def from_dict(cls, raw: dict, source: str = "matrix", default_name: str = "benchmark") -> "Matrix":
        if not isinstance(raw, dict):
            raise ConfigError(f"{source}: expected a mapping with 'matrix:' and the base run config")
        axes = raw.get("matrix") or {}
        if not isinstance(axes, dict):
            raise ConfigError(f"{source}: matrix: expected a mapping of config keys to lists of values")
        norm: dict[str, list[Any]] = {}
        for key, values in axes.items():
            values = values if isinstance(values, list) else [values]
            if not values:
                raise ConfigError(f"{source}: matrix: {key}: needs at least one value")
            norm[ALIASES.get(key, key)] = values
        name = benchmark_name(raw["name"], f"{source}: name") if raw.get("name") else _default_name(default_name)
        base = {k: v for k, v in raw.items() if k not in SPEC_KEYS}
        return cls(name, base, norm, [_norm_keys(x, source, "exclude") for x in raw.get("exclude") or []],
                   [_norm_keys(x, source, "cells") for x in raw.get("cells") or []])

    def to_dict(self) -> dict:
        return {"name": self.name, **self.base, "matrix": self.axes, "exclude": self.exclude, "cells": self.extra}

    def expand(self) -> list[Cell]:
        """Every distinct cell, in axis order; options a technique lacks are dropped, not errors."""
        combos = [dict(zip(self.axes, values)) for values in itertools.product(*self.axes.values())] if self.axes else [{}]
        combos = [c for c in combos if not any(all(c.get(k) == v for k, v in ex.items()) for ex in self.exclude)]
        cells, seen = [], set()
        for overrides in combos + self.extra:
            params = _applicable(overrides, self.base)
            config = _build(self.base, params, self.name, len(cells))
            key = cell_id(config)
            if key in seen:  # e.g. ia3 under two ranks it does not have
                continue
            seen.add(key)
            cells.append(Cell(len(cells), params, config))
        return cells

    def varying(self, cells: list[Cell]) -> list[str]:
        """The swept keys whose value differs between cells (what a label needs to show)."""
        keys = list(self.axes) + [k for extra in self.extra for k in extra if k not in self.axes]
        return [k for k in dict.fromkeys(keys) if len({json.dumps(c.params.get(k), default=str) for c in cells}) > 1]


def benchmark_name(name: str, source: str = "name") -> str:
    """A benchmark's name is also its runs folder: one safe path component, or a ConfigError."""
    name = str(name)
    try:
        cleaned = safe_name(name)
    except ValueError:
        cleaned = None
    if cleaned != name:
        hint = f" (try '{cleaned}')" if cleaned else ""
        raise ConfigError(f"{source}: {name!r} cannot name a benchmark: use letters, digits, '-', '_' and '.'{hint}")
    return name


def _default_name(stem: str) -> str:
    try:
        return safe_name(stem)
    except ValueError:
        return "benchmark"


def cell_id(config: RunConfig) -> str:
    """Stable id of a cell: its config without where it writes."""
    data = config.model_dump(mode="json")
    data.pop("output_dir", None)
    data.pop("run_name", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


def _options_of(technique: str) -> dict | None:
    """The options a technique takes; None for an unknown one (RunConfig then fails with its own message)."""
    from graft.errors import GraftError
    from graft.techniques import get_technique

    try:
        return get_technique(technique).settings.model_fields
    except GraftError:
        return None


def _applicable(overrides: dict[str, Any], base: dict) -> dict[str, Any]:
    """Drop technique options the cell's technique does not have (ranks for IA3, say)."""
    fields = _options_of(overrides.get("technique.name") or (base.get("technique") or {}).get("name") or "lora")
    if fields is None:
        return dict(overrides)
    return {k: v for k, v in overrides.items()
            if not k.startswith("technique.") or k == "technique.name" or k.split(".", 1)[1] in fields}


def _build(base: dict, params: dict[str, Any], name: str, index: int) -> RunConfig:
    label = ", ".join(f"{k}={v}" for k, v in params.items()) or "base config"
    source = f"benchmark {name}, cell {index} ({label})"
    try:
        raw = apply_overrides(_base_options(base, params), params)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return RunConfig.from_dict(raw, source=source)


def _base_options(base: dict, params: dict[str, Any]) -> dict:
    """Technique options of the base config apply only where the cell keeps the base's technique or
    swaps in one that has them (a base `technique.r` with ia3 in the matrix, say)."""
    technique = base.get("technique")
    name = params.get("technique.name")
    if not isinstance(technique, dict) or name is None or name == technique.get("name", "lora"):
        return base
    fields = _options_of(name)
    if fields is None:
        return base
    return {**base, "technique": {k: v for k, v in technique.items() if k == "name" or k in fields}}


def _norm_keys(raw: Any, source: str, section: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {section}: each entry must be a mapping of config keys to values")
    return {ALIASES.get(k, k): v for k, v in raw.items()}


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
