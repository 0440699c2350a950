"""`graft tune`: hyper-parameter search (Optuna TPE + median pruning) over a run config."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from graft.cli.progress import RichProgress

out = Console()


def tune(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="run.yaml: the base config (trial 0 runs it as given)"),
    space: Path = typer.Option(..., "--space", "-s", help="space.yaml: dotted config keys -> ranges or choices"),
    trials: int = typer.Option(10, "--trials", "-n", help="trials to run (added to the study's earlier ones)"),
    name: Optional[str] = typer.Option(None, help="study name; the same name resumes the study (default: run_name, or MODEL-TECHNIQUE)"),
    timeout: Optional[float] = typer.Option(None, help="seconds after which no new trial starts"),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="stop trials whose eval loss trails the median of earlier ones"),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="trial 0 runs the config as given"),
    set_: list[str] = typer.Option([], "--set", help="any base config key, e.g. --set train.max_steps=20"),
    report: bool = typer.Option(True, "--report/--no-report", help="build the dashboard (NAME/report/dashboard.html) at the end"),
    db: Optional[Path] = typer.Option(None, help="results database (default: graft.db in GRAFT_HOME)"),
) -> None:
    """Search learning rate, rank, alpha, dropout, target modules ... for the lowest eval loss; writes best.yaml."""
    from graft.config import RunConfig, apply_overrides, parse_set_option
    from graft.errors import ConfigError
    from graft.tune import Space
    from graft.tune import tune as run_tune

    overrides = dict(parse_set_option(item) for item in set_)
    if config:
        cfg = RunConfig.load(config, overrides)
    elif "data.path" in overrides:
        cfg = RunConfig.from_dict(apply_overrides({}, overrides), source="command line")
    else:
        raise ConfigError("give --config run.yaml (or at least --set data.path=FILE)")
    search = Space.load(space)
    _quiet_optuna()
    with RichProgress() as progress:
        result = run_tune(cfg, search, trials=trials, name=name, timeout=timeout, prune=prune, baseline=baseline,
                          store=db, progress=progress)
    _table(result)
    _verdict(result)
    if report and result.trials:
        from graft.bench.report import build_report
        from graft.bench.store import Store

        written = build_report(Store(db).records(result.benchmark), result.folder / "report",
                               f"graft tune: {result.name}")
        out.print(f"dashboard: {written['dashboard']}")
    out.print(f"trials stored as benchmark '{result.benchmark}' in {result.db}; {result.trials_file} lists them",
              highlight=False)


def _table(result) -> None:
    from graft.tune.records import params_text

    table = Table(title=f"study {result.name}: {len(result.trials)} trials")
    for col in ("#", "state", "eval loss", "step", "params", "time"):
        table.add_column(col, justify="right" if col in ("#", "eval loss", "step", "time") else "left")
    best = result.best["number"] if result.best else None
    for t in result.trials:
        state = {"failed": "[red]failed[/red]", "pruned": "[dim]pruned[/dim]"}.get(t["state"], t["state"])
        if t["baseline"]:
            state += " (baseline)"
        if t["number"] == best:
            state = f"[bold green]{state} best[/bold green]"
        loss = f"{t['eval_loss']:.4f}" if t["eval_loss"] is not None else ""
        params = params_text(t["params"])
        if t["error"] and t["state"] == "failed":
            params += f"  [red]{t['error'].splitlines()[0][:80]}[/red]"
        wall = f"{t['wall_s']:.0f} s" if t.get("wall_s") is not None else ""
        table.add_row(str(t["number"]), state, loss, str(t["step"] or ""), params, wall)
    out.print(table)


def _verdict(result) -> None:
    best, base = result.best, result.baseline
    if best is None:
        out.print("[red]no trial completed[/red]: nothing to recommend (see the errors above)")
        return
    line = f"best: trial {best['number']}, eval loss {best['eval_loss']:.4f}"
    if base and base["state"] == "completed":
        change = 100 * (best["eval_loss"] - base["eval_loss"]) / base["eval_loss"]
        line += f" vs baseline {base['eval_loss']:.4f} ({change:+.1f}%)"
    elif base:
        line += f" (the baseline trial {base['state']})"
    out.print(f"[bold green]{line}[/bold green]", highlight=False)
    out.print(f"best config: {result.best_config}  (graft train -c {result.best_config})", highlight=False)


def _quiet_optuna() -> None:
    """graft prints a line per trial itself; Optuna's own INFO lines would repeat them."""
    try:
        import optuna
    except ImportError:  # tune() says so, with the install hint
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
