"""The jobs part of a server: its JobStore, and the embedded WorkerPool started and stopped with it."""

from __future__ import annotations

from graft.jobs import JobStore
from graft.jobs.worker import WorkerPool


class JobService:
    """From ServerSettings (db, workers, runs_path()); workers 0 runs no jobs here (other workers take them)."""

    def __init__(self, settings, stale_after_s: float = 30.0):
        self.runs_root = settings.runs_path()
        self.store = JobStore(settings.db)
        self.pool = WorkerPool(settings.db, settings.workers, self.runs_root, stale_after_s) if settings.workers else None

    def start(self) -> list[dict]:
        """Start the workers; returns the jobs recovered from a previous run."""
        return self.pool.start() if self.pool else []

    def stop(self) -> None:
        if self.pool:
            self.pool.stop()
