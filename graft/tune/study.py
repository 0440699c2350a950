"""`tune()`: an Optuna study over a base run config, one trial after another in this process.

TPE samples the space (seeded by train.seed), a median pruner stops trials whose eval loss trails
the earlier trials' at the same step, and trial 0 is the config as given, so the search is measured
against it. The study lives in OUTPUT_DIR/NAME/optuna.db (the same name resumes it and adds trials),
each trial in OUTPUT_DIR/NAME/trial-NNN (a normal run folder), each result in graft's results
database as benchmark "tune-NAME". best.yaml and trials.json are rewritten after every trial.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graft.bench.matrix import benchmark_name
from graft.bench.store import Store
from graft.config import RunConfig, apply_overrides
from graft.errors import ConfigError
from graft.paths import safe_name
from graft.progress import NullProgress, Progress
from graft.tune.records import INTERRUPTED, label, trial_record, trial_row
from graft.tune.space import Space
from graft.tune.trial import Outcome, run_trial, trial_name

PRUNER_STARTUP_TRIALS = 2  # completed trials before the median means anything


@dataclass
class TuneResult:
    name: str
    folder: Path              # OUTPUT_DIR/NAME: optuna.db, trial-NNN/, best.yaml, trials.json
    storage: str              # the Optuna storage URL (optuna.load_study(study_name=name, storage=...))
    benchmark: str            # the study's name in graft's results database
    db: str                   # that database
    trials: list[dict]        # every trial of the study so far, as in trials.json
    best: dict | None         # the completed trial with the lowest eval loss
    baseline: dict | None     # trial 0, the config as given (None with baseline=False)
    best_config: Path | None  # best.yaml: `graft train -c best.yaml`
    trials_file: Path


def tune(cfg: RunConfig, space: Space, trials: int = 10, name: str | None = None, timeout: float | None = None,
         prune: bool = True, baseline: bool = True, store: Store | str | Path | None = None,
         progress: Progress | None = None, warmup_evals: int = 1, startup_trials: int | None = None) -> TuneResult:
    """Run `trials` more trials of study `name` (default: run_name, or MODEL-TECHNIQUE).

    `timeout`: seconds after which no new trial starts. `warmup_evals`: evaluations of each trial
    the pruner lets pass before it may stop it. `startup_trials`: random trials before TPE models the
    results (default: half of `trials`, 2 to 10). `store`: the results database (default: graft's).
    """
    optuna = _optuna()
    progress = progress or NullProgress()
    if trials < 0:
        raise ConfigError(f"trials: expected 0 or more, got {trials}")
    name = benchmark_name(name or default_name(cfg), "study name")
    cfg = with_eval(cfg, progress)
    space.check(cfg)
    first = space.baseline(cfg) if baseline else None  # before anything trains or is written
    folder = Path(cfg.output_dir) / name
    storage = _storage(folder, name)
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize", load_if_exists=True)
    _check_same(study, cfg, space, folder)
    # seeded by train.seed, offset by the trials already run: a resumed study must not replay the
    # random start of the session before it
    study.sampler = optuna.samplers.TPESampler(
        seed=cfg.train.seed + len(study.trials), n_startup_trials=startup_trials or max(2, min(10, trials // 2)))
    study.pruner = (optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS,
                                                n_warmup_steps=warmup_evals * cfg.train.eval_every + 1)
                    if prune else optuna.pruners.NopPruner())
    store = store if isinstance(store, Store) else Store(store)
    bench = f"tune-{name}"
    _fail_stale(study, space, cfg, folder, store, bench, progress)
    if first is not None and not any(t.user_attrs.get("baseline") for t in study.trials):
        study.enqueue_trial(first, user_attrs={"baseline": True})
    _save_spec(store, bench, study, cfg, space, folder, storage)

    started = time.monotonic()
    progress.start("trials", total=trials)
    try:
        for done in range(trials):
            if timeout is not None and time.monotonic() - started >= timeout:
                progress.log(f"timeout: {timeout:g} s passed; {done} of {trials} trials ran")
                break
            trial = study.ask()
            is_base = bool(trial.user_attrs.get("baseline"))
            _save_spec(store, bench, study, cfg, space, folder, storage)  # the dashboard lists it as pending
            outcome = run_trial(trial, cfg, space, folder, progress, prune)
            _tell(study, trial, outcome)
            store.save_cell(trial_record(bench, outcome, cfg, is_base))
            result = _write_outputs(study, cfg, space, folder, storage, bench, store)
            progress.log(_line(outcome, is_base, result.best))
            progress.advance("trials", 1, best=result.best["eval_loss"] if result.best else "-")
            if outcome.abort is not None:  # recorded as failed above; the study stops here
                raise outcome.abort
    finally:
        progress.finish("trials")
    _save_spec(store, bench, study, cfg, space, folder, storage)
    return _write_outputs(study, cfg, space, folder, storage, bench, store)


def default_name(cfg: RunConfig) -> str:
    return cfg.run_name or f"{safe_name(Path(cfg.model.name).stem)}-{cfg.technique.name}"


def with_eval(cfg: RunConfig, progress: Progress) -> RunConfig:
    """`cfg`, checked to hold out eval rows, with train.eval_every set (a quarter of max_steps when
    unset): trials are ranked by eval loss and pruned at each evaluation."""
    data = cfg.data
    if not data.eval_path and (data.eval_size == 0 or (data.eval_size is None and data.eval_fraction == 0)):
        raise ConfigError("tuning ranks trials by eval loss, and this config holds out no eval rows",
                          hint="set data.eval_size (e.g. --set data.eval_size=50), data.eval_fraction or data.eval_path")
    if cfg.train.eval_every:
        return cfg
    if not cfg.train.max_steps:
        raise ConfigError("train.eval_every is not set, and without train.max_steps graft cannot choose it",
                          hint="--set train.eval_every=N: the pruner compares trials at each evaluation")
    every = max(1, cfg.train.max_steps // 4)
    steps = f"{every} steps" if every > 1 else "step"
    progress.log(f"train.eval_every is not set: evaluating every {steps} (the pruner compares trials there)")
    return RunConfig.from_dict(apply_overrides(cfg.model_dump(mode="json"), {"train.eval_every": every}))


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("graft tune needs Optuna, which is not installed", hint="pip install 'graft[tune]'") from None
    return optuna


def _storage(folder: Path, name: str) -> str:
    db = folder / "optuna.db"
    if not db.exists() and any(folder.glob("trial-*")):
        # trial folders of a study whose database is gone: new trials would reuse their numbers
        raise ConfigError(f"{folder} holds trial folders but no optuna.db, so study '{name}' cannot resume",
                          hint="pick another --name, or move that folder away")
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db.resolve()}"


def _fingerprint(cfg: RunConfig, space: Space) -> dict:
    config = cfg.model_dump(mode="json")
    config.pop("output_dir", None)
    config.pop("run_name", None)
    return json.loads(json.dumps({"config": config, "space": space.to_dict()}))


def _check_same(study, cfg: RunConfig, space: Space, folder: Path) -> None:
    """A resumed study must keep its config and space, or its trials stop being comparable."""
    mine = _fingerprint(cfg, space)
    theirs = study.user_attrs.get("graft")
    if theirs is None:
        study.set_user_attr("graft", mine)
        return
    before, now = _flat(theirs), _flat(mine)
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if changed:
        shown = ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "")
        raise ConfigError(f"study '{study.study_name}' in {folder} was started with another config or space "
                          f"(differs at {shown})",
                          hint="resume with the same config, --set options and space file, or start a new study with another --name")


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _fail_stale(study, space: Space, cfg: RunConfig, folder: Path, store: Store, bench: str, progress: Progress) -> None:
    """Trials a killed process left running are failed (one process runs a study at a time)."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        params = {k: space.params[k].decode(v) for k, v in t.params.items() if k in space.params}
        outcome = Outcome(t.number, params, "failed", folder / trial_name(t.number), error=INTERRUPTED)
        store.save_cell(trial_record(bench, outcome, cfg, bool(t.user_attrs.get("baseline"))))
        progress.log(f"trial {t.number} was left running by an earlier process: recorded as failed")


def _tell(study, trial, outcome: Outcome) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("run_dir", str(outcome.run_dir))
    trial.set_user_attr("wall_s", round(outcome.wall_s, 2))
    if outcome.error:
        trial.set_user_attr("error", outcome.error)
    if outcome.state == "completed":
        trial.set_user_attr("step", outcome.step)
        study.tell(trial, outcome.value)
    else:
        study.tell(trial, state=TrialState.PRUNED if outcome.state == "pruned" else TrialState.FAIL)


def _rows(study, space: Space) -> list[dict]:
    from optuna.trial import TrialState

    return [trial_row(t, space) for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]


def _save_spec(store: Store, bench: str, study, cfg: RunConfig, space: Space, folder: Path, storage: str) -> None:
    """The study as a benchmark: its trials are the cells, in trial order."""
    spec = {"kind": "tune", "study": study.study_name, "folder": str(folder), "storage": storage,
            "config": cfg.model_dump(mode="json"), "space": space.to_dict()}
    store.save_benchmark(bench, spec, [trial_name(row["number"]) for row in _rows(study, space)])


def _write_outputs(study, cfg: RunConfig, space: Space, folder: Path, storage: str, bench: str,
                   store: Store) -> TuneResult:
    """trials.json, and best.yaml: the best trial's full config, ready for `graft train -c`."""
    rows = _rows(study, space)
    completed = [r for r in rows if r["state"] == "completed"]
    best = min(completed, key=lambda r: r["eval_loss"]) if completed else None
    base = next((r for r in rows if r["baseline"]), None)
    trials_file = folder / "trials.json"
    trials_file.write_text(json.dumps({"study": study.study_name, "storage": storage, "benchmark": bench,
                                       "best": best, "baseline": base, "trials": rows}, indent=2, default=str) + "\n")
    best_file = None
    if best is not None:
        best_file = folder / "best.yaml"
        chosen = space.apply(cfg, best["params"], source=f"trial {best['number']}")
        chosen = chosen.model_copy(update={"output_dir": cfg.output_dir, "run_name": cfg.run_name})
        against = f"; baseline (trial {base['number']}) {_loss(base)}" if base else ""
        best_file.write_text(f"# graft tune {study.study_name}: trial {best['number']}, eval loss "
                             f"{best['eval_loss']:.4f}{against}\n# graft train -c {best_file}\n" + chosen.to_yaml())
    return TuneResult(study.study_name, folder, storage, bench, store.path, rows, best, base, best_file, trials_file)


def _line(outcome: Outcome, baseline: bool, best: dict | None) -> str:
    """One line per trial: what it sampled, how it ended, the best so far."""
    if outcome.state == "completed":
        end = f"eval loss {outcome.value:.4f}"
    elif outcome.state == "pruned":
        end = f"pruned at step {outcome.step} (eval loss {outcome.value:.4f})"
    else:
        end = f"FAILED: {(outcome.error or '').splitlines()[0][:160]}"
    so_far = f"; best {best['eval_loss']:.4f} (#{best['number']})" if best else ""
    return f"trial {label(outcome.number, outcome.params, baseline)} -> {end}{so_far}"


def _loss(row: dict) -> str:
    if row["state"] == "completed":
        return f"{row['eval_loss']:.4f}"
    return row["state"]
