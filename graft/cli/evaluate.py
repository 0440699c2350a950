"""`graft eval`: perplexity and exact match (accuracy and F1 for classifiers), optionally base vs tuned."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from graft.cli.progress import RichProgress

out = Console()


def eval_command(
    target: str = typer.Argument(..., help="run folder, adapter folder, or model"),
    data: Optional[str] = typer.Option(None, help="eval data file (default: the run's held-out split)"),
    format: str = typer.Option("auto", "--format", "-f", help="data format"),
    limit: Optional[int] = typer.Option(100, help="evaluate at most N examples"),
    compare_base: bool = typer.Option(False, "--compare-base", help="also score the base model"),
    max_new_tokens: Optional[int] = typer.Option(None, help="generation budget (default: longest reference + 16)"),
    batch_size: int = typer.Option(8, help="examples per forward pass"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows"),
    as_json: bool = typer.Option(False, "--json", help="print the full result as JSON"),
) -> None:
    """Evaluate a run or model on held-out data."""
    from graft.evaluate import evaluate

    with RichProgress() as progress:
        result = evaluate(target, data, format, limit, compare_base, max_new_tokens, batch_size, skip_bad_rows, progress)
    if as_json:
        out.print_json(json.dumps(result))
        return
    print_scores(result)


def print_scores(result: dict) -> None:
    columns = [c for c in ("base", "tuned", "model") if c in result]
    table = Table("metric", *columns, title=f"{result['target']} ({result[columns[0]]['examples']} examples)")
    for key, fmt in (("perplexity", "{:.3f}"), ("loss", "{:.4f}"), ("exact_match", "{:.1f}%"),
                     ("accuracy", "{:.1f}%"), ("f1", "{:.1f}"), ("f1_macro", "{:.1f}")):
        if key in result[columns[0]]:
            table.add_row(key, *(fmt.format(result[c][key]) for c in columns))
    out.print(table)
    last = columns[-1]
    for s in result[last].get("samples", []):
        mark = "[green]match[/green]" if s["match"] else "[red]miss[/red]"
        out.print(f"[dim]row {s['row']}[/dim] {mark}\n  expected: {s['reference']}\n  got:      {s['prediction']}", highlight=False)
