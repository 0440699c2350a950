"""`graft benchmark`: run a matrix of cells (each its own process), store, export and chart the results."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from graft.cli.progress import RichProgress

out = Console()
app = typer.Typer(help="Benchmark matrices: techniques x optimizers x precision x ..., with a dashboard.",
                  invoke_without_command=True, no_args_is_help=False)

# comma-separated flag -> swept config key
AXIS_FLAGS = {
    "techniques": "technique.name", "ranks": "technique.r", "alphas": "technique.alpha",
    "optimizers": "train.optimizer", "precisions": "train.precision",
    "checkpointing": "train.gradient_checkpointing", "batch_sizes": "train.batch_size",
    "grad_accums": "train.grad_accum", "lrs": "train.lr",
}
TERMINAL_METRICS = ("tokens_per_s", "peak_memory_bytes", "estimated_memory_bytes", "train_loss", "eval_loss",
                    "trainable_percent")
RUNS_DIR = Path("runs/benchmarks")
DB_HELP = "results database (default: graft.db in GRAFT_HOME)"


@app.callback()
def benchmark(
    ctx: typer.Context,
    matrix: Optional[Path] = typer.Option(None, "--matrix", "-m", help="matrix.yaml: a base run config plus 'matrix:' axes"),
    name: Optional[str] = typer.Option(None, help="benchmark name (default: the matrix's name, or 'benchmark')"),
    model: Optional[str] = typer.Option(None, help="model for every cell"),
    data: Optional[str] = typer.Option(None, help="training data for every cell"),
    techniques: Optional[str] = typer.Option(None, help="comma-separated, e.g. lora,dora,ia3"),
    ranks: Optional[str] = typer.Option(None, help="technique option r, e.g. 4,8,16"),
    alphas: Optional[str] = typer.Option(None, help="technique option alpha, e.g. 8,16,32"),
    optimizers: Optional[str] = typer.Option(None, help="e.g. adamw,sgd,mezo"),
    precisions: Optional[str] = typer.Option(None, help="e.g. fp32,bf16 (mixed precision needs CUDA)"),
    checkpointing: Optional[str] = typer.Option(None, help="gradient checkpointing: off,on"),
    batch_sizes: Optional[str] = typer.Option(None, help="e.g. 2,4,8"),
    grad_accums: Optional[str] = typer.Option(None, help="e.g. 1,4"),
    lrs: Optional[str] = typer.Option(None, help="e.g. 1e-4,2e-4"),
    steps: Optional[int] = typer.Option(None, help="optimizer steps per cell (train.max_steps)"),
    limit: Optional[int] = typer.Option(None, help="use only the first N data rows"),
    max_length: Optional[int] = typer.Option(None, help="tokens per example"),
    set_: list[str] = typer.Option([], "--set", help="any base config key, e.g. --set train.lr=1e-4"),
    rerun: bool = typer.Option(False, "--rerun", help="run every cell again, finished or not"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="run failed cells again"),
    cell_timeout: Optional[float] = typer.Option(None, help="seconds before a cell is killed and recorded as failed"),
    runs_dir: Path = typer.Option(RUNS_DIR, help="where the cells' run folders go"),
    report: bool = typer.Option(True, "--report/--no-report", help="build the dashboard when the matrix ends"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list the cells and stop"),
    db: Optional[Path] = typer.Option(None, help=DB_HELP),
) -> None:
    """Run a benchmark matrix (`-m matrix.yaml`, or flags); sub-commands read stored results."""
    if ctx.invoked_subcommand is not None:
        return
    from graft.bench.matrix import Matrix, benchmark_name
    from graft.bench.runner import run_matrix
    from graft.bench.store import Store
    from graft.config import apply_overrides, parse_set_option
    from graft.errors import ConfigError

    if matrix is None and not data:
        raise ConfigError("give a matrix file (-m matrix.yaml) or at least --data and an axis (--techniques lora,ia3)")
    values = locals()
    axes = {key: [_value(v) for v in values[flag].split(",") if v.strip()]
            for flag, key in AXIS_FLAGS.items() if values[flag]}
    base_overrides = {k: v for k, v in {"model.name": model, "data.path": data, "train.max_steps": steps,
                                        "data.limit": limit, "data.max_length": max_length}.items() if v is not None}
    base_overrides.update(parse_set_option(item) for item in set_)
    if matrix is not None:
        spec = Matrix.load(matrix)
        spec.base = apply_overrides(spec.base, base_overrides)
        spec.axes.update(axes)
    else:
        spec = Matrix.from_dict({**apply_overrides({}, base_overrides), "matrix": axes}, source="command line")
    if name:
        spec.name = benchmark_name(name, "--name")
    cells = spec.expand()
    varying = spec.varying(cells)
    if dry_run:
        _cells_table(spec.name, [(c.index, c.id, c.label(varying)) for c in cells])
        return
    store = Store(db)
    with RichProgress() as progress:
        records = run_matrix(spec, store, runs_dir, progress, rerun=rerun, retry_failed=retry_failed,
                             cell_timeout=cell_timeout)
    _results_table(spec.name, records)
    if report:
        _report(spec.name, records, runs_dir / spec.name / "report")
    out.print(f"results stored in {store.path}; `graft benchmark report {spec.name}` rebuilds the dashboard")


@app.command("report")
def report_command(
    name: str = typer.Argument(..., help="benchmark name (see `graft benchmark list`)"),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="folder (default: runs/benchmarks/NAME/report)"),
    formats: str = typer.Option("svg,png", help="image formats of the charts"),
    db: Optional[Path] = typer.Option(None, help=DB_HELP),
) -> None:
    """Charts (Vega-Lite specs, SVG/PNG) and one offline HTML dashboard of a benchmark's results."""
    from graft.bench.report import FORMATS
    from graft.bench.store import Store
    from graft.errors import ConfigError

    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    if not chosen or any(f not in FORMATS for f in chosen):
        raise ConfigError(f"--formats {formats!r}: choose from {', '.join(FORMATS)}")
    records = Store(db).records(name)
    _report(name, records, output or RUNS_DIR / name / "report", chosen)


@app.command("export")
def export_command(
    name: str = typer.Argument(..., help="benchmark name"),
    format: str = typer.Option("markdown", "--format", "-f", help="csv | json | markdown"),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="file (default: print)"),
    db: Optional[Path] = typer.Option(None, help=DB_HELP),
) -> None:
    """A benchmark's results as CSV, JSON or a Markdown table."""
    from graft.bench.export import FORMATS, export
    from graft.bench.store import Store
    from graft.errors import ConfigError

    if format not in FORMATS:
        raise ConfigError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    text = export(Store(db).records(name), format)
    if output:
        output.write_text(text)
        out.print(f"wrote {output}")
    else:
        print(text, end="")


@app.command("list")
def list_command(db: Optional[Path] = typer.Option(None, help=DB_HELP)) -> None:
    """Stored benchmarks and how many of their cells completed or failed."""
    from graft.bench.store import Store

    store = Store(db)
    table = Table(title=f"benchmarks in {store.path}")
    for col in ("name", "cells", "completed", "failed", "updated"):
        table.add_column(col)
    for b in store.names():
        table.add_row(b["name"], str(b["cells"]), str(b["completed"]), str(b["failed"]), b["updated"])
    out.print(table)


def _value(text: str):
    """A flag value as YAML reads it: 8 -> int, 1e-4 -> float, on/off -> bool."""
    import yaml

    value = yaml.safe_load(text.strip())
    return value if value is not None else text.strip()


def _cells_table(name: str, rows) -> None:
    table = Table(title=f"benchmark {name}: {len(rows)} cells")
    for col in ("#", "id", "cell"):
        table.add_column(col)
    for index, cid, label in rows:
        table.add_row(str(index), cid, label)
    out.print(table)


def _results_table(name: str, records: list[dict]) -> None:
    from graft.bench.record import COLUMNS

    shown = [c for c in COLUMNS if c[1] in TERMINAL_METRICS]
    table = Table(title=f"benchmark {name}")
    table.add_column("cell", no_wrap=True)
    table.add_column("status")
    for title, _, _ in shown:
        table.add_column(title, justify="right")
    for r in records:
        m = r.get("metrics") or {}
        status = r["status"] if r["status"] != "failed" else f"[red]failed[/red]: {(r.get('error') or '').splitlines()[0][:60]}"
        table.add_row(r["label"], status, *(fmt(m[key]) if m.get(key) is not None else "" for _, key, fmt in shown))
    out.print(table)


def _report(name: str, records: list[dict], folder: Path, formats: tuple[str, ...] | None = None) -> None:
    from graft.bench.report import FORMATS, build_report

    written = build_report(records, folder, f"graft benchmark: {name}", formats or FORMATS)
    out.print(f"dashboard: {written['dashboard']} ({len(written['specs'])} charts)")
