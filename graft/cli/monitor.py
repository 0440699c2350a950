"""`graft monitor drift|requests`: served prompts against training data, and the served-request log.

`graft monitor drift` exits 0 when there is no drift and 3 when there is (2 stays for usage and
user errors), so scripts and schedulers can act on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from graft.cli.progress import RichProgress

out = Console()
app = typer.Typer(help="Watch served models: drift against the training data, the served-request log.",
                  no_args_is_help=True)

DRIFT_EXIT = 3
DB_HELP = "database the server logs requests to: a file path or SQLAlchemy URL (default: graft.db in GRAFT_HOME, or GRAFT_DB_URL)"


@app.command("drift")
def drift(
    run: Path = typer.Argument(..., help="the run folder whose served prompts to check"),
    model: Optional[str] = typer.Option(None, "--model", help="compare the prompts served under this model id instead"),
    threshold: float = typer.Option(0.05, help="drift when the embedding test's p-value is below this"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
    max_rows: int = typer.Option(2000, help="prompts sampled from each side at most"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON instead of a table"),
    retrain: bool = typer.Option(False, "--retrain", help="on drift, train a new run with this run's config on --data"),
    data: Optional[str] = typer.Option(None, help="the new training data for --retrain"),
    steps: Optional[int] = typer.Option(None, help="optimizer steps for --retrain (default: the run's)"),
    submit: bool = typer.Option(False, "--submit", help="with --retrain: queue the training as a job in --db "
                                "for the web app's workers (graft serve / graft worker) instead of training here"),
    broker: Optional[str] = typer.Option(None, help="with --submit: also announce the job to Celery workers "
                                         "at this broker (default: GRAFT_BROKER_URL when set)"),
) -> None:
    """Compare served prompts with the run's training data; exit 0: no drift, 3: drift."""
    from graft.errors import ConfigError
    from graft.monitor.drift import drift_report
    from graft.monitor.requests import RequestLog

    if retrain != bool(data):
        raise ConfigError("--retrain needs --data NEW_DATA" if retrain else "--data goes with --retrain")
    if submit and not retrain:
        raise ConfigError("--submit goes with --retrain")
    if broker and not submit:
        raise ConfigError("--broker goes with --submit")
    with RichProgress() as progress:
        report = drift_report(run, RequestLog(db), model_id=model, threshold=threshold, max_rows=max_rows,
                              progress=progress)
    if not as_json:
        _print_report(report)
    if retrain:
        queue = {"db": db, "broker": broker} if submit else None
        report["retrained"] = _retrain(run, data, steps, report["drifted"], quiet=as_json, queue=queue)
    if as_json:
        out.print_json(json.dumps(report))
    if report["drifted"]:
        raise typer.Exit(DRIFT_EXIT)


def _print_report(report: dict) -> None:
    from graft.monitor.drift import fmt_p

    tests = report["tests"]
    table = Table("test", "compares", "statistic", "p-value", "fires?", title="Drift tests")
    e, n, v = tests["embedding"], tests["length"], tests["vocabulary"]
    rows = [
        ("embedding (decides)", "MiniLM embeddings", f"MMD² {e['value']:.4f}", e),
        ("length", f"tokens, median {n['served_median']:g} served vs {n['train_median']:g} train",
         f"KS D {n['value']:.3f}", n),
        ("vocabulary", f"words, {v['oov_rate']:.0%} served unseen ({v['baseline_oov_rate']:.0%} expected)",
         f"JS div {v['value']:.3f}", v),
    ]
    for name, what, stat, test in rows:
        table.add_row(name, what, stat, fmt_p(test["p_value"]), "[red]yes[/red]" if test["fires"] else "no")
    c = report["counts"]
    out.print(f"{c['served']} served prompts (of {c['served_total']}) vs {c['train']} training prompts "
              f"(of {c['train_total']})", highlight=False)
    out.print(table)
    colour = "bold red" if report["drifted"] else "bold green"
    out.print(f"[{colour}]{report['verdict']}[/{colour}]", highlight=False)
    for reason in report["reasons"]:
        out.print(f"  - {escape(reason)}", highlight=False)
    files = report["files"]
    out.print(escape(f"report {files['json']}\nchart  {files['svg']} (also .png, spec .vl.json)"), highlight=False)


def _retrain(run: Path, data: str, steps: int | None, drifted: bool, quiet: bool, queue: dict | None) -> dict | None:
    if not drifted:
        if not quiet:
            out.print("no drift, so nothing was retrained")
        return None
    from graft.monitor.retrain import retrain, submit_retrain

    if queue is not None:
        job, announced = submit_retrain(run, data, steps, **queue)
        if not quiet:
            where = "announced to the Celery workers" if announced else "for the workers sharing that database"
            out.print(f"[bold green]queued[/bold green] re-training job {job.id} (run {job.spec['run_name']}), "
                      f"{where}; follow it with GET /api/jobs/{job.id}", highlight=False)
        return {"job": job.id, "run_name": job.spec["run_name"], "announced": announced}

    with RichProgress() as progress:
        result = retrain(run, data, steps, progress)
    s = result.summary
    if not quiet:
        out.print(f"[bold green]retrained[/bold green] {escape(str(result.run_dir))}: {s['steps']} steps, loss "
                  f"{s['first_loss']:.4f} -> {s['final_loss']:.4f}", highlight=False)
    return {"run_dir": str(result.run_dir), "summary": s}


@app.command("requests")
def requests(
    model: Optional[str] = typer.Option(None, "--model", help="only requests for this model id"),
    limit: int = typer.Option(20, help="how many of the newest requests"),
    db: Optional[str] = typer.Option(None, help=DB_HELP),
) -> None:
    """The newest served requests: model, tokens, latency, speed, status."""
    from graft.monitor.requests import RequestLog

    rows = RequestLog(db).recent(limit=limit, model=model)
    if not rows:
        out.print("no served requests logged" + (f" for model {model!r}" if model else ""))
        return
    table = Table("id", "time (UTC)", "model", "adapter", "prompt tok", "completion tok", "latency s",
                  "first token s", "tok/s", "stream", "status", "prompt", title="Served requests, newest first")
    for r in rows:
        table.add_row(str(r["id"]), r["created"][:19].replace("T", " "), r["model"],
                      escape(_tail(r["adapter"])) if r["adapter"] else "-", str(r["prompt_tokens"]),
                      str(r["completion_tokens"]), f"{r['latency_s']:.2f}",
                      f"{r['first_token_s']:.2f}" if r["first_token_s"] is not None else "-",
                      f"{r['tokens_per_s']:.1f}", "yes" if r["stream"] else "no",
                      r["status"] if r["status"] == "ok" else f"[red]{r['status']}[/red]",
                      escape(_short(r["prompt"] or "", 40))
                      + (f" [red]{escape(_short(r['error'], 40))}[/red]" if r["error"] else ""))
    out.print(table)


def _tail(path: str) -> str:
    """runs/NAME/adapter -> NAME/adapter: enough to tell runs apart in a narrow column."""
    return "/".join(Path(path).parts[-2:])


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"
