"""`graft distributed config`: DeepSpeed / FSDP / DDP launch files for a run config."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="Multi-GPU launch files (DeepSpeed ZeRO, FSDP, DDP) for a run config.", no_args_is_help=True)
out = Console()


@app.command("config")
def config(
    config: Path = typer.Option(..., "--config", "-c", help="run.yaml (its distributed: section picks the strategy)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="folder for the files (default: RUN-launch beside run.yaml)"),
    layer_cls: Optional[str] = typer.Option(None, "--layer-cls", help="FSDP wrap class (default: read from the model)"),
    set_: list[str] = typer.Option([], "--set", help="any config key, e.g. --set distributed.strategy=zero3"),
) -> None:
    """Write and validate the launch files for distributed.strategy; print how to launch them."""
    from graft.config import RunConfig, parse_set_option
    from graft.techniques import get_technique
    from graft.train.distributed import ZERO_STAGE, check_distributed, layer_class_names, write_launch_files

    cfg = RunConfig.load(config, dict(parse_set_option(item) for item in set_))
    d, t = cfg.distributed, cfg.train
    for warning in check_distributed(cfg, get_technique(cfg.technique.name)):
        out.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if d.strategy == "fsdp" and not layer_cls:
        layer_cls = layer_class_names(cfg)
    folder = out_dir or config.parent / f"{config.stem}-launch"
    paths = write_launch_files(cfg, folder, layer_cls)
    for path in paths:
        out.print(f"wrote {path}", highlight=False)

    what = {"ddp": "DDP (a full replica per GPU)", "fsdp": f"FSDP2 full sharding, one unit per {layer_cls}"}.get(
        d.strategy, f"DeepSpeed ZeRO stage {ZERO_STAGE.get(d.strategy)}")
    offload = f", offload to {d.offload}" if d.offload != "none" else ""
    out.print(f"{what}{offload} over {d.num_gpus} GPU(s), precision {t.precision}, micro-batch {t.batch_size} "
              f"x accumulation {t.grad_accum} per GPU", highlight=False)
    if d.strategy in ZERO_STAGE and importlib.util.find_spec("deepspeed") is None:
        out.print("deepspeed is not installed here, so its own parser did not check the JSON "
                  "(pip install deepspeed to check it)", highlight=False)
    acc = paths[-1]
    out.print("\nlaunch your own accelerate or transformers-Trainer training script with them:", highlight=False)
    out.print(f"  accelerate launch --config_file {acc} train.py", highlight=False)
    if d.strategy in ZERO_STAGE:
        out.print(f"  (a Trainer script can also take TrainingArguments(deepspeed=\"{paths[0]}\"))", highlight=False)
    out.print(f"\nor let graft launch its own loop: graft train -c {config} --nproc {d.num_gpus}", highlight=False)
