"""The search space of `graft tune`: dotted RunConfig keys -> ranges or choices, from space.yaml.

    train.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
    technique.r: {type: int, low: 4, high: 32, step: 4}
    technique.alpha: [8, 16, 32]                       # a plain list: categorical
    technique.dropout: {type: float, low: 0.0, high: 0.2}
    technique.target_modules: {choices: [all-linear, [q_proj, v_proj]]}

Every mistake is a ConfigError naming the file and the key, raised before any training: a bad range,
a key RunConfig does not have (each bound and choice is built into a config), a key that would
change what the trials are scored on (data, model, seed).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from graft.config import RunConfig, apply_overrides
from graft.errors import ConfigError

TYPES = ("float", "int", "categorical")
NUMERIC_FIELDS = {"type", "low", "high", "step", "log"}
CATEGORICAL_FIELDS = {"type", "choices"}
# Keys the space may not sample, and why: every trial must be scored on the same eval rows by the
# same tokenizer, or their eval losses are not comparable.
FORBIDDEN = {
    "data": "every trial must train and be scored on the same data and eval split",
    "model": "eval losses of different models (tokenizers) are not comparable",
    "task": "every trial must train the same task",
    "train.seed": "the seed fixes the eval split and the sampler; vary it with --set train.seed=N instead",
    "train.eval_every": "the pruner compares trials at the same evaluation steps",
    "output_dir": "graft tune places each trial's run folder itself",
    "run_name": "graft tune names each trial's run folder itself",
}


@dataclass(frozen=True)
class Param:
    key: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple = ()

    @property
    def labels(self) -> list:
        """What Optuna sees for each choice: scalars as they are, lists and mappings as JSON text
        (Optuna's categorical distribution takes scalars only)."""
        return [_label(c) for c in self.choices]

    def decode(self, value: Any) -> Any:
        """An Optuna value back to the config value (a choice label back to its list)."""
        if self.type != "categorical":
            return value
        return self.choices[self.labels.index(value)]

    def encode(self, value: Any) -> Any:
        """A config value as Optuna stores it; ValueError when it lies outside this parameter."""
        if self.type == "categorical":
            for choice, label in zip(self.choices, self.labels):
                if _same(choice, value):
                    return label
            raise ValueError(f"not one of the choices {_show(list(self.choices))}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("not a number")
        if not self.low <= value <= self.high:
            raise ValueError(f"outside [{_show(self.low)}, {_show(self.high)}]")
        if self.step and not _on_grid(value - self.low, self.step):
            raise ValueError(f"not on the grid low + k * step ({_show(self.low)} + k * {_show(self.step)})")
        return int(value) if self.type == "int" else float(value)

    def suggest(self, trial) -> Any:
        """Ask an Optuna trial for this parameter; returns the config value."""
        if self.type == "categorical":
            return self.decode(trial.suggest_categorical(self.key, self.labels))
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def candidates(self) -> list:
        """Values that together exercise the key: both bounds, or every choice."""
        if self.type == "categorical":
            return list(self.choices)
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]

    def to_dict(self) -> dict:
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out = {"type": self.type, "low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out


@dataclass
class Space:
    params: dict[str, Param]
    source: str = "space"

    @classmethod
    def load(cls, path: str | Path) -> "Space":
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such space file") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "space") -> "Space":
        if not isinstance(raw, dict) or not raw:
            raise ConfigError(f"{source}: expected a mapping of dotted config keys (train.lr, technique.r, ...) "
                              "to ranges or lists of choices")
        return cls({str(k): _param(str(k), v, source) for k, v in raw.items()}, source)

    def to_dict(self) -> dict:
        return {key: p.to_dict() for key, p in self.params.items()}

    def suggest(self, trial) -> dict[str, Any]:
        """The config values an Optuna trial samples, by dotted key."""
        return {key: p.suggest(trial) for key, p in self.params.items()}

    def apply(self, cfg: RunConfig, values: dict[str, Any], source: str) -> RunConfig:
        """`cfg` with the sampled values set; ConfigError (naming `source`) for an invalid combination."""
        return RunConfig.from_dict(apply_overrides(cfg.model_dump(mode="json"), values), source=source)

    def check(self, cfg: RunConfig) -> None:
        """Build a config with each bound and each choice, one key at a time, so a key RunConfig does
        not have, or a value its technique refuses, fails now naming the space file and the key."""
        for key, p in self.params.items():
            for value in p.candidates():
                try:
                    self.apply(cfg, {key: value}, source=f"{key}={_show(value)}")
                except ConfigError as e:
                    raise ConfigError(f"{self.source}: {key}: {e}") from None

    def baseline(self, cfg: RunConfig) -> dict[str, Any]:
        """The Optuna params that reproduce `cfg` itself (trial 0), by dotted key."""
        current = cfg.model_dump(mode="json")
        out = {}
        for key, p in self.params.items():
            value = _lookup(current, key)
            try:
                out[key] = p.encode(value)
            except ValueError as e:
                raise ConfigError(
                    f"{self.source}: {key}: the run config's own value {_show(value)} is {e}; trial 0 (the baseline) "
                    "runs the config as given, so the space must contain it",
                    hint="widen the range or add the value to the choices, or pass --no-baseline") from None
        return out


def _param(key: str, spec: Any, source: str) -> Param:
    where = f"{source}: {key}"
    for prefix, why in FORBIDDEN.items():
        if key == prefix or key.startswith(prefix + "."):
            raise ConfigError(f"{where}: cannot be searched: {why}")
    if "." not in key:
        raise ConfigError(f"{where}: expected a dotted config key such as train.lr or technique.r, not a section")
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a list of choices or a mapping such as "
                          "{type: float, low: 1.0e-5, high: 1.0e-3, log: true}")
    kind = spec.get("type") or ("categorical" if "choices" in spec else None)
    if kind is None:
        both_int = all(isinstance(spec.get(k), int) and not isinstance(spec.get(k), bool) for k in ("low", "high"))
        kind = "int" if both_int else "float"
    if kind not in TYPES:
        raise ConfigError(f"{where}: unknown type {kind!r} (choose one of {', '.join(TYPES)})")
    allowed = CATEGORICAL_FIELDS if kind == "categorical" else NUMERIC_FIELDS
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(map(str, unknown))} for type {kind} "
                          f"(allowed: {', '.join(sorted(allowed))})")
    if kind == "categorical":
        return _categorical(key, spec.get("choices"), where)
    return _numeric(key, kind, spec, where)


def _categorical(key: str, choices: Any, where: str) -> Param:
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}: choices must be a non-empty list")
    labels = [_label(c) for c in choices]
    if len(set(map(repr, labels))) < len(labels):
        raise ConfigError(f"{where}: choices repeat a value: {_show(choices)}")
    return Param(key, "categorical", choices=tuple(choices))


def _numeric(key: str, kind: str, spec: dict, where: str) -> Param:
    for field in ("low", "high"):
        if field not in spec:
            raise ConfigError(f"{where}: type {kind} needs low and high")
    # PyYAML reads 1e-5 (no dot) as a string: accept it as the number it plainly is
    low, high = (_number(spec[f], f"{where}: {f}", kind) for f in ("low", "high"))
    step = _number(spec["step"], f"{where}: step", kind) if spec.get("step") is not None else None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false")
    if low >= high:
        raise ConfigError(f"{where}: low ({_show(low)}) must be below high ({_show(high)})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log scale needs low > 0 (got {_show(low)})")
    if step is not None:
        if step <= 0:
            raise ConfigError(f"{where}: step must be positive")
        if log and not (kind == "int" and step == 1):  # Optuna refuses both at once
            raise ConfigError(f"{where}: use either log or step, not both")
        if not _on_grid(high - low, step):
            raise ConfigError(f"{where}: high - low ({_show(high - low)}) is not a multiple of step ({_show(step)})")
    return Param(key, kind, low=low, high=high, step=step, log=log)


def _number(value: Any, where: str, kind: str) -> float | int:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    if kind == "int":
        if value != int(value):
            raise ConfigError(f"{where}: {_show(value)} is not a whole number (type int)")
        return int(value)
    return float(value)


def _on_grid(distance: float, step: float) -> bool:
    k = distance / step
    return abs(k - round(k)) < 1e-9 * max(1.0, abs(k))


def _label(choice: Any) -> Any:
    if choice is None or isinstance(choice, (bool, int, float, str)):
        return choice
    return json.dumps(choice, sort_keys=True)


def _same(a: Any, b: Any) -> bool:
    """Config equality: 16 == 16.0, but True is not 1."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _lookup(data: dict, dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
