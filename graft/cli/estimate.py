"""`graft estimate`: will this run fit, term by term, and what to change if not. Loads no weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

out = Console()


def estimate(
    config: Path = typer.Option(..., "--config", "-c", help="run.yaml"),
    gpu: Optional[str] = typer.Option(None, "--gpu", help="estimate for this GPU: h100, a100-40, a100-80, rtx4090, l4, t4, ..."),
    vram: Optional[str] = typer.Option(None, "--vram", help="device memory, e.g. 24GiB or 16GB (with --gpu: resize it)"),
    set_: list[str] = typer.Option([], "--set", help="any config key, e.g. --set train.batch_size=8"),
    from_data: bool = typer.Option(False, "--from-data", help="tokenize the data for the real largest micro-batch "
                                   "(default: the worst case, batch_size x max_length tokens, no data read)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Estimate a run's peak memory before loading anything: breakdown, total, fits or not, and advice."""
    from graft.config import RunConfig, parse_set_option
    from graft.memory import device_for, estimate_run
    from graft.models import resolve
    from graft.models.load import ensure_folder
    from graft.techniques import get_technique
    from graft.train.recipe import resolve_task

    cfg = RunConfig.load(config, dict(parse_set_option(item) for item in set_))
    device = device_for(gpu or cfg.memory.device, vram or cfg.memory.vram)
    folder = ensure_folder(resolve(cfg.model.name, revision=cfg.model.revision))
    task = resolve_task(cfg, folder)
    technique = get_technique(cfg.technique.name)
    sizes = _from_data(cfg, folder, task, technique) if from_data else None
    result = estimate_run(cfg, folder, technique, cfg.technique.options, task, device,
                          sizes.tokens if sizes else None, sizes.targets if sizes else None,
                          data_tokens=sizes.data_tokens if sizes else None)
    if as_json:
        out.print_json(json.dumps({"model": cfg.model.name, "technique": cfg.technique.name, **result.to_dict()}))
        return
    _render(result)


def _from_data(cfg, folder, task, technique):
    from graft.data.prepare import prepare_data
    from graft.memory.tokens import largest_micro_batch
    from graft.models import load_tokenizer, resolve

    tokenizer = load_tokenizer(resolve(cfg.model.name, revision=cfg.model.revision), cfg.model.trust_remote_code)
    data = prepare_data(cfg.data, tokenizer, cfg.train.seed, task)
    packed = technique.packs(task)
    return largest_micro_batch(data.train.items, cfg.train.batch_size, cfg.data.max_length, cfg.data.packing, packed,
                               cfg.train.seed)


def _render(result) -> None:
    from graft.memory import fmt_bytes

    table = Table("term", "size", "when", "how it is counted", title=f"memory estimate: {result.device.describe()}")
    for t in result.terms:
        when = "not on the device" if t.phase == "host" else t.phase
        table.add_row(t.name, fmt_bytes(t.bytes), when, t.note)
    out.print(table)
    verdict = "[bold green]fits[/bold green]" if result.fits else "[bold red]does not fit[/bold red]"
    out.print(f"total {fmt_bytes(result.total_bytes)} (peak in {result.peak_phase}) of "
              f"{fmt_bytes(result.device.total_bytes)}: {verdict}", highlight=False)
    for a in result.assumptions:
        out.print(f"[dim]assumes {a}[/dim]", highlight=False)
    if not result.fits:
        if not result.advice:
            out.print("no combination of graft's levers fits this device", highlight=False)
        for a in result.advice:
            out.print(f"[bold]try[/bold] {a.label}: {fmt_bytes(a.total_bytes)}  [dim]{a.as_set_flags()}[/dim]", highlight=False)
