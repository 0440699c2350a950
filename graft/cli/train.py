"""`graft train`: a run from a YAML config, flags, or both (flags win)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from graft.cli.progress import RichProgress

out = Console()

# flag name -> dotted config key; every flag is optional and overrides the YAML file
FLAG_KEYS = {
    "model": "model.name", "data": "data.path", "format": "data.format", "eval_data": "data.eval_path",
    "max_length": "data.max_length", "train_on": "data.train_on", "packing": "data.packing",
    "skip_bad_rows": "data.skip_bad_rows", "limit": "data.limit", "technique": "technique.name",
    "rank": "technique.r", "alpha": "technique.alpha", "dropout": "technique.dropout",
    "target_modules": "technique.target_modules", "epochs": "train.epochs", "max_steps": "train.max_steps",
    "batch_size": "train.batch_size", "grad_accum": "train.grad_accum", "lr": "train.lr",
    "scheduler": "train.scheduler", "seed": "train.seed", "checkpoint_every": "checkpoint.every",
    "keep_last": "checkpoint.keep_last", "output_dir": "output_dir", "run_name": "run_name", "task": "task",
    "optimizer": "train.optimizer", "gradient_checkpointing": "train.gradient_checkpointing",
    "precision": "train.precision",
}


def train(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="run.yaml"),
    model: Optional[str] = typer.Option(None, help="catalog name, folder, .gguf file or Hub id"),
    task: Optional[str] = typer.Option(None, help="causal-lm | classification (default: auto, from model and data)"),
    data: Optional[str] = typer.Option(None, help="training data file or Hub dataset id"),
    format: Optional[str] = typer.Option(None, help="alpaca|sharegpt|messages|text|auto"),
    eval_data: Optional[str] = typer.Option(None, help="separate eval file (default: a held-out split)"),
    max_length: Optional[int] = typer.Option(None, help="tokens per example; longer ones are truncated and counted"),
    train_on: Optional[str] = typer.Option(None, help="responses (default) or all"),
    packing: Optional[bool] = typer.Option(None, "--packing/--no-packing", help="fill micro-batches by token budget"),
    skip_bad_rows: Optional[bool] = typer.Option(None, "--skip-bad-rows", help="skip malformed rows instead of stopping"),
    limit: Optional[int] = typer.Option(None, help="use only the first N rows"),
    technique: Optional[str] = typer.Option(None, help="fine-tuning technique (default lora; see `graft techniques list`)"),
    option: list[str] = typer.Option([], "--option", "-o", help="a technique option, e.g. -o r=16 (`graft techniques show NAME`)"),
    rank: Optional[int] = typer.Option(None, "--rank", "--lora-r", help="technique option r (rank)"),
    alpha: Optional[float] = typer.Option(None, "--alpha", "--lora-alpha", help="technique option alpha"),
    dropout: Optional[float] = typer.Option(None, "--dropout", "--lora-dropout", help="technique option dropout"),
    target_modules: Optional[str] = typer.Option(None, help="all-linear, or comma-separated module names"),
    epochs: Optional[float] = typer.Option(None, help="passes over the data"),
    max_steps: Optional[int] = typer.Option(None, help="optimizer steps (overrides epochs)"),
    batch_size: Optional[int] = typer.Option(None, help="examples per micro-batch"),
    grad_accum: Optional[int] = typer.Option(None, help="micro-batches per optimizer step"),
    lr: Optional[float] = typer.Option(None, help="peak learning rate"),
    scheduler: Optional[str] = typer.Option(None, help="linear|cosine|constant|constant_with_warmup"),
    optimizer: Optional[str] = typer.Option(None, help="adamw|adafactor|adamw8bit|paged_adamw8bit|sgd|mezo"),
    gradient_checkpointing: Optional[bool] = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                                          help="recompute activations in backward (less memory)"),
    precision: Optional[str] = typer.Option(None, help="fp32 | bf16 | fp16 (mixed precision: CUDA only)"),
    force: bool = typer.Option(False, "--force", help="train even when the memory estimate says it does not fit"),
    seed: Optional[int] = typer.Option(None, help="random seed"),
    checkpoint_every: Optional[int] = typer.Option(None, help="save a checkpoint every N steps"),
    keep_last: Optional[int] = typer.Option(None, help="checkpoints to keep"),
    output_dir: Optional[str] = typer.Option(None, help="where run folders go (default: runs)"),
    run_name: Optional[str] = typer.Option(None, help="run folder name (default: model-technique-time)"),
    set_: list[str] = typer.Option([], "--set", help="any config key, e.g. --set train.warmup_steps=10"),
    resume: bool = typer.Option(False, "--resume", help="continue the run from its latest checkpoint"),
    run_dir: Optional[Path] = typer.Option(None, help="the run folder to resume (default: output_dir/run_name)"),
    nproc: int = typer.Option(1, "--nproc", min=1, help="processes on this machine (one a GPU), started by torchrun; "
                                                       "DDP unless distributed.strategy says fsdp or zero1-3",
                              rich_help_panel="Several processes"),
    nnodes: int = typer.Option(1, "--nnodes", min=1, help="machines taking part (run the command on each)",
                               rich_help_panel="Several processes"),
    node_rank: int = typer.Option(0, "--node-rank", min=0, help="this machine's number, 0..nnodes-1",
                                  rich_help_panel="Several processes"),
    master_addr: Optional[str] = typer.Option(None, "--master-addr", help="address of machine 0 (with --nnodes)",
                                              rich_help_panel="Several processes"),
    master_port: int = typer.Option(29500, "--master-port", help="port on machine 0", rich_help_panel="Several processes"),
) -> None:
    """Fine-tune a model and write a run folder (config, metrics, checkpoints, adapter, summary).

    With --nproc N (and --nnodes), the run is N processes a machine: each takes its share of every
    optimizer step (the global batch is batch_size x grad_accum x processes) and rank 0 writes the folder."""
    from graft.config import RunConfig, apply_overrides, parse_set_option
    from graft.errors import ConfigError
    from graft.train.run_folder import RunFolder

    from graft.train.launch import Launch

    values = locals()
    overrides = {key: values[flag] for flag, key in FLAG_KEYS.items() if values[flag] is not None}
    how = Launch(nproc, nnodes, node_rank, master_addr, master_port)
    how.check()
    if target_modules and target_modules != "all-linear":
        overrides["technique.target_modules"] = [m.strip() for m in target_modules.split(",") if m.strip()]
    for item in option:
        key, value = parse_set_option(item, "--option", "r=16")
        overrides[f"technique.{key}"] = value
    overrides.update(parse_set_option(item) for item in set_)
    if force:
        overrides["memory.check"] = False

    if resume:
        # A resumed run continues with the config saved in its folder, so it ends where it meant to.
        if run_dir is None:
            base = RunConfig.load(config, overrides) if config else None
            name = run_name or (base.run_name if base else None)
            if not name:
                raise ConfigError("--resume needs the run: --run-dir runs/NAME, or --run-name NAME")
            run_dir = Path(output_dir or (base.output_dir if base else "runs")) / name
        cfg = RunFolder.open(run_dir).load_config()
        _start(cfg, how, run_dir)
        return

    if config:
        cfg = RunConfig.load(config, overrides)
    else:
        if not data:
            raise ConfigError("give --config run.yaml or at least --data FILE")
        cfg = RunConfig.from_dict(apply_overrides({}, overrides), source="command line")
    _start(cfg, how)


def _start(cfg, how, resume_dir: Path | None = None) -> None:
    """In this process, or as several through torchrun."""
    if how.processes > 1:
        from graft.train.launch import launch
        from graft.train.run_folder import RunFolder

        code, run_dir = launch(cfg, how, resume_dir)
        if code != 0:
            raise typer.Exit(code)
        if how.node_rank == 0:
            _report(run_dir, RunFolder(run_dir).read_summary())
        return
    from graft.train.recipe import train as run_training

    with RichProgress() as progress:
        result = run_training(cfg, progress, resume_dir=resume_dir)
    _report(result.run_dir, result.summary)


def _report(run_dir, s: dict) -> None:
    processes = s.get("distributed", {}).get("processes", 1)
    out.print(
        f"[bold green]done[/bold green] {run_dir}: {s['steps']} steps"
        + (f" in {processes} processes ({s['distributed']['strategy']})" if processes > 1 else "")
        + f", loss {s['first_loss']:.4f} -> "
        f"{s['final_loss']:.4f}, {s['tokens_per_s']} tok/s, trainable {s['trainable_percent']}%"
        + (f", eval loss {s['eval_loss']:.4f}" if "eval_loss" in s else "")
        + (f" (ppl {s['eval_ppl']:.2f})" if "eval_ppl" in s else "")
        + (f", accuracy {s['eval_accuracy']:.1f}%, macro F1 {s['eval_f1_macro']:.1f}" if "eval_accuracy" in s else ""),
        highlight=False,
    )
