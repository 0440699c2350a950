"""The Progress interface rendered as Rich progress bars (loss, tokens/s, ETA)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

LABELS = {"train": "training", "eval": "eval loss", "generate": "generating", "convert": "converting GGUF",
          "gguf": "writing GGUF", "embed": "embedding", "read": "reading", "retrieve": "retrieving", "permutations": "permutation test"}


class RichProgress:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._bars = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> "RichProgress":
        self._bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bars.stop()

    def start(self, task: str, total: int | None = None, completed: int = 0) -> None:
        if task in self._tasks:
            self._bars.remove_task(self._tasks.pop(task))
        self._tasks[task] = self._bars.add_task(LABELS.get(task, task), total=total, completed=completed, info="")

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        if task not in self._tasks:
            self.start(task)
        info = "  ".join(_fmt(k, v) for k, v in fields.items())
        self._bars.update(self._tasks[task], advance=n, info=info)

    def log(self, message: str) -> None:
        self._bars.console.print(f"[dim]{message}[/dim]", highlight=False)

    def finish(self, task: str) -> None:
        if task in self._tasks and task != "train":
            # short-lived bars vanish; the training bar stays as a record of the run
            self._bars.remove_task(self._tasks.pop(task))


def _fmt(key: str, value: Any) -> str:
    if key == "tokens_per_s":
        return f"{value:,.0f} tok/s"
    if isinstance(value, float):
        return f"{key} {value:.4f}"
    return f"{key} {value}"
