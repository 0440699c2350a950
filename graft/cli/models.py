"""`graft models list|info|download`."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Column, Table

app = typer.Typer(help="List, inspect and download models.", no_args_is_help=True)
out = Console()


@app.command("list")
def list_models() -> None:
    """Bundled models and Hub models already downloaded."""
    from graft.models.listing import list_models as rows

    table = Table("params", "architecture", "task", "source", "cached?")
    table.columns.insert(0, Column("name", no_wrap=True))  # the one value a user must be able to copy
    for r in rows():
        table.add_row(r["name"], _params(r["params"]), r["architecture"], r["task"], r["source"], r["cached"])
    out.print(table)


@app.command("info")
def info(name: str = typer.Argument(..., help="catalog name, folder, .gguf file or Hub id")) -> None:
    """Where a model comes from and what its config says."""
    from graft.models.listing import model_info

    for key, value in model_info(name).items():
        out.print(f"[bold]{key:>22}[/bold]  {value}", highlight=False)


@app.command("download")
def download(
    repo_id: str = typer.Argument(..., help="Hub id, e.g. HuggingFaceTB/SmolLM2-360M-Instruct"),
    include: list[str] = typer.Option(None, "--include", help="file patterns to fetch (repeatable); default: safetensors, JSON and tokenizer files"),
    revision: str = typer.Option(None, help="branch, tag or commit"),
) -> None:
    """Download a model from the Hugging Face Hub (only the files needed)."""
    from graft.models.hub import download as fetch

    path = fetch(repo_id, patterns=include or None, revision=revision)
    out.print(json.dumps({"repo_id": repo_id, "path": str(path)}))


def _params(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"
