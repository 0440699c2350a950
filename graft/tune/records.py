"""A tuning trial in the two shapes others read: a benchmark record for graft's results database
(so `graft benchmark`, the API and the web UI list the study), and a row of trials.json."""

from __future__ import annotations

from typing import Any

from graft.bench.matrix import Cell
from graft.bench.record import finite
from graft.bench.runner import build_record
from graft.config import RunConfig
from graft.tune.space import Space
from graft.tune.trial import Outcome, trial_name

# Optuna's trial states as graft names them (the record statuses of graft/bench/record.py, plus these)
STATES = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
INTERRUPTED = "interrupted: the process ended during this trial"


def label(number: int, params: dict[str, Any], baseline: bool = False) -> str:
    """`#3 lr=0.000323 r=16 target_modules=q_proj,v_proj`; the baseline says so."""
    head, text = f"#{number}" + (" baseline" if baseline else ""), params_text(params)
    return f"{head} {text}" if text else head


def params_text(params: dict[str, Any]) -> str:
    """`lr=0.000323 r=16 target_modules=q_proj,v_proj`: the last part of each key, the value short."""
    return " ".join(f"{key.rsplit('.', 1)[-1]}={short(value)}" for key, value in params.items())


def trial_record(benchmark: str, outcome: Outcome, base: RunConfig, baseline: bool) -> dict:
    """The benchmark record of a finished trial: metrics, trace and evals from its run folder, as the
    benchmark runner reads a cell's, plus `trial` (number, baseline, state, the loss Optuna ranks by)."""
    cell = Cell(outcome.number, outcome.params, outcome.config or base)
    record = build_record(benchmark, cell, label(outcome.number, outcome.params, baseline), outcome.run_dir,
                          outcome.error, outcome.wall_s, outcome.started)
    # a trial, not a config, is the unit: two trials may sample the same values
    record["cell"] = trial_name(outcome.number)
    record["status"] = outcome.state
    if outcome.state == "pruned":
        record["error"] = None  # stopped on purpose, not a failure
    if outcome.config is None:
        record["config"] = None  # the sampled values made no valid config (the error says why)
    record["trial"] = {"number": outcome.number, "baseline": baseline, "state": outcome.state,
                       "value": outcome.value, "step": outcome.step}
    return finite(record)


def trial_row(frozen, space: Space) -> dict:
    """One Optuna trial (a FrozenTrial) as a row of trials.json."""
    state = STATES.get(frozen.state.name, frozen.state.name.lower())
    steps = sorted(frozen.intermediate_values)
    attrs = frozen.user_attrs
    error = attrs.get("error") or (INTERRUPTED if state == "failed" else None)
    return {
        "number": frozen.number,
        "state": state,
        "baseline": bool(attrs.get("baseline")),
        "eval_loss": finite(frozen.value) if state in ("completed", "pruned") else None,
        "step": attrs.get("step") if state == "completed" else (steps[-1] if steps and state == "pruned" else None),
        "params": {k: space.params[k].decode(v) if k in space.params else v for k, v in frozen.params.items()},
        "error": error,
        "run_dir": attrs.get("run_dir"),
        "wall_s": attrs.get("wall_s"),
        "started": frozen.datetime_start.isoformat(timespec="seconds") if frozen.datetime_start else None,
        "finished": frozen.datetime_complete.isoformat(timespec="seconds") if frozen.datetime_complete else None,
    }


def short(value: Any) -> str:
    """A sampled value, short: 0.000323, q_proj,v_proj."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
