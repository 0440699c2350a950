"""`graft export`: merged safetensors or GGUF files from a run, each checked after reloading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from graft.cli.progress import RichProgress

out = Console()


def export_command(
    target: str = typer.Argument(..., help="run folder or adapter folder"),
    format: str = typer.Option("merged", "--format", "-f", help="merged (safetensors for transformers) or gguf"),
    quant: Optional[list[str]] = typer.Option(
        None, "--quant", "-q", help="comma-separated or repeated. GGUF (default f16): f32 f16 bf16 q8_0 q5_1 q5_0 "
        "q4_1 q4_0, with llama-cpp-python also q2_k q3_k_m q4_k_m q5_k_m q6_k ...; merged (default: float "
        "weights of --dtype): nf4 fp4 int8, stored by bitsandbytes"),
    output: Optional[Path] = typer.Option(None, "--out", "-o", help="export folder (default: TARGET/export)"),
    dtype: str = typer.Option("float32", help="merged weights' dtype: float32, float16 or bfloat16"),
    prompts: Optional[Path] = typer.Option(None, help="check with these prompts (a text file, one per line)"),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="reload the export and compare with the trained model"),
    push: Optional[str] = typer.Option(None, "--push", help="upload the export to the Hub as ORG/NAME"),
    private: bool = typer.Option(False, "--private", help="with --push: create a private repo"),
    as_json: bool = typer.Option(False, "--json", help="print the manifests as JSON"),
) -> None:
    """Export a run; every file is reloaded and its next tokens compared with the trained model's."""
    from graft.errors import ConfigError
    from graft.export import export
    from graft.export.push import push as push_folder

    texts = None
    if prompts is not None:
        if not prompts.is_file():
            raise ConfigError(f"--prompts: no file {prompts}")
        texts = [line.strip() for line in prompts.read_text().splitlines() if line.strip()]
        if not texts:
            raise ConfigError(f"--prompts: {prompts} holds no prompt (one per line)")
    quants = [q for item in quant or [] for q in item.split(",") if q.strip()]
    if push and format == "merged" and len(quants) > 1:
        raise ConfigError("--push uploads one merged export: give one --quant with it")
    with RichProgress() as progress:
        results = export(target, format, output, quants, dtype, texts, verify, progress)
    folder = _folder_of(target, output, format, results)
    if push:
        url = push_folder(folder, push, private)
        out.print(f"pushed {folder} to {url}")
    if as_json:
        out.print_json(json.dumps(results))
        return
    _print(results, folder)


def _folder_of(target: str, output: Optional[Path], fmt: str, results: list[dict]) -> Path:
    from graft.export.run import default_out

    root = output or default_out(Path(target))
    if fmt == "gguf":
        return root / "gguf"
    return root / results[0]["folder"] if len(results) == 1 else root  # merged-nf4/ and merged-int8/, say


def _print(results: list[dict], folder: Path) -> None:
    table = Table(title=f"exported to {folder}")
    table.add_column("file", overflow="fold")
    for name in ("type", "MiB", "checked by", "tokens", "top-1", "max diff"):
        table.add_column(name, justify="left" if name in ("type", "checked by") else "right")
    warn = []
    for m in results:
        f = m["files"][0] if m["format"] == "gguf" else {"name": f"{m['folder']}/", "bytes": sum(x["bytes"] for x in m["files"])}
        checks = m["verification"] or [None]
        for c in checks:
            if c is None:
                table.add_row(f["name"], m["type"], _size(f["bytes"]), "not checked", "", "", "")
                continue
            mark = {True: "[green]ok[/green] ", False: "[red]low[/red] ", None: ""}[c["passed"]]
            table.add_row(f["name"], m["type"], _size(f["bytes"]), c["with"], str(c["positions"]),
                          f"{mark}{c['top1_match']:.1%}", f"{c['max_abs_logit_diff']:.4f}")
            if c["passed"] is False:
                warn.append(f"{f['name']} ({c['with']}): {c['top1_match']:.1%} < expected {c['expected_top1']:.0%}")
    out.print(table)
    for note in sorted({n for m in results for n in m["notes"]}):
        out.print(f"[dim]- {note}[/dim]", highlight=False)
    for line in warn:
        out.print(f"[yellow]warning:[/yellow] {line}", highlight=False)


def _size(n: int) -> str:
    return f"{n / 2**20:,.1f}"
