"""`graft data inspect`: what graft makes of a dataset, before any training."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(help="Check datasets.", no_args_is_help=True)
out = Console()


@app.command("inspect")
def inspect(
    path: str = typer.Argument(..., help="JSON/JSONL/CSV/TSV/Parquet/TXT file or Hub dataset id"),
    format: str = typer.Option("auto", "--format", "-f", help="alpaca|sharegpt|messages|text|classification|auto"),
    skip_bad_rows: bool = typer.Option(False, "--skip-bad-rows", help="skip malformed rows and count them"),
    show: int = typer.Option(2, help="examples to print"),
) -> None:
    """Detect the format, validate every row, and show a few examples."""
    from graft.data.load import load_examples

    loaded = load_examples(path, format=format, skip_bad_rows=skip_bad_rows)
    out.print(f"[bold]{loaded.source}[/bold]: format {loaded.format}, {loaded.rows_read} rows read, "
              f"{len(loaded.examples)} usable, {len(loaded.skipped)} skipped")
    for err in loaded.skipped[:10]:
        out.print(f"  [yellow]skipped[/yellow] {err}", highlight=False)
    for ex in loaded.examples[:show]:
        out.print(f"[dim]row {ex.row}[/dim]", ex.messages or {"text": ex.text[:300], "label": ex.label})
