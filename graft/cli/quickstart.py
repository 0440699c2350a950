"""`graft quickstart`: the main job, offline, in minutes on a CPU."""

from __future__ import annotations

import typer
from rich.console import Console

from graft.cli.evaluate import print_scores
from graft.cli.progress import RichProgress

out = Console()


def quickstart(
    steps: int = typer.Option(40, help="LoRA optimizer steps"),
    train_rows: int = typer.Option(400, help="generated training sentences"),
    eval_rows: int = typer.Option(50, help="generated held-out sentences"),
    output_dir: str = typer.Option("runs", help="where the run folder goes"),
) -> None:
    """Fine-tune the bundled SmolLM2 to extract orders as JSON; print base vs tuned."""
    from graft.quickstart.run import quickstart as run

    with RichProgress() as progress:
        report = run(output_dir, steps, train_rows, eval_rows, progress=progress)
    print_scores(report)
    base, tuned = report["base"], report["tuned"]
    out.print(
        f"[bold]exact match {base['exact_match']:.1f}% -> {tuned['exact_match']:.1f}% "
        f"({tuned['exact_match'] - base['exact_match']:+.1f} points), perplexity {base['perplexity']:.2f} -> "
        f"{tuned['perplexity']:.2f}[/bold] in {report['total_time_s']:.0f} s. Run folder: {report['run_dir']}",
        highlight=False,
    )
    out.print(f"[dim]try it: graft chat {report['run_dir']} --prompt \"...\"[/dim]")
