"""The jobs part of a server: its JobStore, and the embedded WorkerPool started and stopped with it."""

from __future__ import annotations

from graft.jobs import JobStore
from graft.jobs.worker import WorkerPool


class JobService:
    """From ServerSettings (db, workers, runs_path(), broker_url). With a broker, submitted jobs are announced
    to Celery workers (`graft worker`) and none run here; otherwise `workers` embedded slots run them
    (0: none here, other processes sharing the database take them)."""

    def __init__(self, settings, stale_after_s: float = 30.0):
        self.runs_root = settings.runs_path()
        self.store = JobStore(settings.db)
        self.broker = settings.broker_url
        embedded = settings.workers and not self.broker
        self.pool = WorkerPool(settings.db, settings.workers, self.runs_root, stale_after_s) if embedded else None

    def submit(self, kind: str, spec: dict):
        from graft.jobs.celery_backend import submit

        return submit(self.store, kind, spec, self.broker)

    def start(self) -> list[dict]:
        """Start the workers; returns the jobs recovered from a previous run."""
        return self.pool.start() if self.pool else []

    def stop(self) -> None:
        if self.pool:
            self.pool.stop()
