"""`graft worker`: a Celery worker that takes graft's jobs from Redis (docs/deploy.md)."""

from __future__ import annotations

from typing import Optional

import typer

from graft.jobs.celery_backend import BROKER_ENV


def worker(
    broker: Optional[str] = typer.Option(None, envvar=BROKER_ENV, show_envvar=True,
                                         help="Celery broker URL, e.g. redis://HOST:6379/0"),
    db: Optional[str] = typer.Option(None, envvar="GRAFT_DB_URL", show_envvar=True,
                                     help="job database shared with the API: SQLAlchemy URL (postgresql+psycopg://...) "
                                     "or SQLite file (default: graft's database)"),
    concurrency: int = typer.Option(1, "--concurrency", "-c", min=1, help="jobs this worker runs at once"),
    runs_root: Optional[str] = typer.Option(None, help="where run folders go; the API must see the same folder "
                                            "(default: GRAFT_HOME/runs)"),
    stale_after: float = typer.Option(30.0, help="seconds without a heartbeat before a running job counts as lost"),
) -> None:
    """Run graft's jobs from a Celery broker (Redis); the API enqueues them, this takes them."""
    from graft.jobs.celery_backend import run_worker

    run_worker(broker, db, concurrency, runs_root, stale_after_s=stale_after)
