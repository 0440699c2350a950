"""JobProgress: graft's Progress interface written into a job's rows.

Progress (the current task's {task, completed, total, loss, ...} plus every task's under `tasks`)
goes to the job's `progress` column and a `progress` event at most every `every_s`
seconds (a training step can be far quicker than a database write); every log line is a `log`
event, and every row a training run appends to its metrics.jsonl is a `metric` event, so a loss
chart can be drawn from the events alone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from graft.jobs.store import JobStore


class JobProgress:
    def __init__(self, store: JobStore, job_id: str, metrics_file: str | Path | None = None, every_s: float = 0.5,
                 overdue_stop: Callable[[], str | None] | None = None):
        self.store, self.job_id, self.every_s = store, job_id, every_s
        # the reason of a stop whose SIGINT should have landed by now: a signal that arrives inside a
        # database driver's wait can be swallowed there, and the job would then run on
        self.overdue_stop, self._stopped = overdue_stop, False
        self.tasks: dict[str, dict[str, Any]] = {}  # every task seen: a final eval must not hide the training
        self.current: str | None = None
        self._last_write = 0.0
        self._metrics = Path(metrics_file) if metrics_file else None
        # rows already there were reported by an earlier attempt
        self._offset = self._metrics.stat().st_size if self._metrics and self._metrics.is_file() else 0

    def start(self, task: str, total: int | None = None, completed: int = 0) -> None:
        self.current = task
        self.tasks[task] = {"task": task, "completed": completed, "total": total}
        self._write(force=True)

    def advance(self, task: str, n: int = 1, **fields: Any) -> None:
        reason = self.overdue_stop() if self.overdue_stop and not self._stopped else None
        if reason:
            self._stopped = True
            raise KeyboardInterrupt(reason)  # the same way out as the signal: the run checkpoints
        self.current = task
        state = self.tasks.setdefault(task, {"task": task, "completed": 0, "total": None})
        state["completed"] += n
        state.update((k, v) for k, v in fields.items() if _plain(v))
        self._write()

    def log(self, message: str) -> None:
        self.store.add_event(self.job_id, "log", {"message": message})

    def finish(self, task: str) -> None:
        self._write(force=True)

    def _write(self, force: bool = False) -> None:
        self._tail_metrics()
        if force or time.monotonic() - self._last_write >= self.every_s:
            self._last_write = time.monotonic()
            snapshot = {**self.tasks.get(self.current, {}), "tasks": self.tasks}
            self.store.add_event(self.job_id, "progress", snapshot, progress=snapshot)

    def _tail_metrics(self) -> None:
        if not self._metrics or not self._metrics.is_file():
            return
        size = self._metrics.stat().st_size
        if size < self._offset:  # a resumed run cut the rows after its checkpoint (the rest were reported)
            self._offset = size
        if size == self._offset:
            return
        with self._metrics.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read(size - self._offset)
        whole = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(whole)
        for line in whole.decode().splitlines():
            if line.strip():
                self.store.add_event(self.job_id, "metric", json.loads(line))


def _plain(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None)))
