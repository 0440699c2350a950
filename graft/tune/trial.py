"""One tuning trial: the sampled values on top of the base config, trained in this process, its eval
losses reported to Optuna as it goes, and how it ended (completed, pruned or failed)."""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from graft.config import RunConfig
from graft.errors import DataError, ModelNotFoundError, OfflineError, StopTraining
from graft.progress import Progress
from graft.train.recipe import train
from graft.tune.space import Space


# Errors of the data or the model, which the space cannot sample: every trial would fail the same way.
EVERY_TRIAL = (DataError, ModelNotFoundError, OfflineError)


@dataclass
class Outcome:
    number: int
    params: dict[str, Any]          # the config values of the sampled keys
    state: str                      # completed | pruned | failed
    run_dir: Path                   # root/trial-NNN, whether or not the run got to create it
    value: float | None = None      # the eval loss Optuna ranks by (pruned: the last one reported)
    step: int | None = None         # the step of that eval loss
    error: str | None = None
    config: RunConfig | None = None  # None when the sampled values made no valid config
    wall_s: float = 0.0
    abort: BaseException | None = None  # Ctrl-C, or an error no sampled value causes: recorded, then re-raised
    started: datetime = field(default_factory=datetime.now)


class TrainBars:
    """Passes the training bar on and drops the run's own log lines: they are in each trial's
    train.log, and N trials of them would bury the one line per trial that matters."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def start(self, task, total=None, completed=0):
        self.progress.start(task, total=total, completed=completed)

    def advance(self, task, n=1, **fields):
        self.progress.advance(task, n, **fields)

    def log(self, message):
        pass

    def finish(self, task):
        self.progress.finish(task)


def run_trial(trial, base: RunConfig, space: Space, root: Path, progress: Progress, prune: bool) -> Outcome:
    """Train the trial's config as root/trial-NNN; a failed or interrupted run is an outcome, not an exception."""
    params = space.suggest(trial)
    name = trial_name(trial.number)
    outcome = Outcome(trial.number, params, "failed", root / name)
    t0 = time.perf_counter()
    try:
        cfg = space.apply(base, params, source=f"trial {trial.number}")
        outcome.config = cfg = cfg.model_copy(update={"output_dir": str(root), "run_name": name})
        result = train(cfg, TrainBars(progress), on_eval=_reporter(trial, outcome, prune))
    except StopTraining:
        outcome.state = "pruned"
    except KeyboardInterrupt as e:
        outcome.error, outcome.value, outcome.step, outcome.abort = "interrupted (Ctrl-C)", None, None, e
    except Exception as e:  # out of memory, a bad combination, a diverged run: this trial only
        outcome.error, outcome.value, outcome.step = f"{type(e).__name__}: {e}", None, None
        if isinstance(e, EVERY_TRIAL):
            outcome.abort = e
    else:
        loss = result.summary.get("eval_loss")
        if loss is not None and math.isfinite(loss):
            outcome.state, outcome.value, outcome.step = "completed", loss, result.summary.get("steps")
        else:
            outcome.value = outcome.step = None
            outcome.error = ("the run has no eval loss (is the eval split empty?)" if loss is None
                             else f"eval loss is {loss} (the run diverged)")
    finally:
        outcome.wall_s = time.perf_counter() - t0
        gc.collect()  # the trial's model, before the next one loads its own
        _empty_cuda_cache()
    return outcome


def trial_name(number: int) -> str:
    return f"trial-{number:03d}"


def _reporter(trial, outcome: Outcome, prune: bool):
    """on_eval for train(): report each eval loss at its step; prune when the pruner says so, except
    at the last step, where the run is complete anyway."""

    def on_eval(step: int, total_steps: int, scores: dict) -> None:
        loss = scores.get("eval_loss")
        if loss is None:
            return
        trial.report(loss, step)
        outcome.value, outcome.step = loss, step
        if prune and step < total_steps and trial.should_prune():
            raise StopTraining(f"pruned at step {step}: eval loss {loss:.4f} is worse than the median of earlier trials")

    return on_eval


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()

