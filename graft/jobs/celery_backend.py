"""Optional Celery backend: workers on other machines take jobs through Redis (`pip install "graft[celery]"`).

The database stays the one truth about jobs; a Redis message is only a doorbell. The task
`graft.run_job(job_id)` claims through the JobStore (one conditional UPDATE), so a message that
arrives twice, late, or for a cancelled job runs nothing twice. Each claimed job runs in a child
process exactly as under the embedded WorkerPool (graft.jobs.run_one: heartbeats, cancel, resume).
A worker re-rings for queued jobs when it starts (a submit whose enqueue was lost still runs) and
recovers jobs whose worker died, re-ringing for those it re-queued.

    API side:     JobStore(url).submit(...) then enqueue(job.id)          (GRAFT_BROKER_URL)
    worker side:  graft worker --broker redis://... --db postgresql+psycopg://...
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from graft.db import as_url
from graft.errors import ConfigError, GraftError
from graft.jobs.store import JobStore, worker_id
from graft.paths import graft_home

BROKER_ENV = "GRAFT_BROKER_URL"
TASK = "graft.run_job"
QUEUE = "graft"
log = logging.getLogger("graft.jobs")
_APPS: dict[str, Any] = {}
_ACTIVE: set = set()  # the WorkerPools running a job right now, stopped when the worker shuts down


def _celery():
    try:
        import celery
    except ImportError:
        raise GraftError("the Celery backend needs the celery package",
                         hint='pip install "graft[celery]"  (celery[redis]); or run jobs in the embedded workers') from None
    return celery


def configured_broker(url: str | None = None) -> str | None:
    """`url`, else GRAFT_BROKER_URL when set, else None (no Celery: workers share the database)."""
    return url or os.environ.get(BROKER_ENV) or None


def broker_url(url: str | None = None) -> str:
    url = configured_broker(url)
    if not url:
        raise ConfigError(f"no Celery broker: pass --broker redis://HOST:6379/0 or set {BROKER_ENV}")
    return url


def make_app(broker: str | None = None, db: str | Path | None = None, runs_root: str | Path | None = None):
    """A Celery app on `broker` whose `graft.run_job` task runs jobs of the store at `db`."""
    celery = _celery()
    app = celery.Celery("graft", broker=broker_url(broker), set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,  # results live in the job store
        worker_prefetch_multiplier=1,  # a long job must not hold back messages other workers could take
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        graft_db=as_url(db),
        graft_runs_root=str(Path(runs_root) if runs_root else graft_home() / "runs"),
    )
    app.task(name=TASK, bind=True, ignore_result=True)(_run_job_task)
    return app


def submit(store: JobStore, kind: str, spec: dict, broker: str | None = None):
    """Queue a job in `store` (validated: a ConfigError names the field) and, with a broker, ring for it.
    Without one, workers sharing the database (embedded in `graft serve`, or serve_workers) take it."""
    job = store.submit(kind, spec)
    if broker:
        enqueue(job.id, broker)
    return job


def enqueue(job_id: str, broker: str | None = None) -> None:
    """Ring for a queued job (API side). The job must already be in the store."""
    url = broker_url(broker)
    if url not in _APPS:
        _APPS[url] = make_app(url)
    _APPS[url].send_task(TASK, args=[job_id], queue=QUEUE)


def _run_job_task(task, job_id: str) -> str | None:
    conf = task.app.conf
    return run_job(job_id, conf.graft_db, conf.graft_runs_root,
                   ring=lambda again: task.app.send_task(TASK, args=[again], queue=QUEUE))


_SLOTS = itertools.count()


def run_job(job_id: str, db: str, runs_root: str | Path, ring=None) -> str | None:
    """Claim a queued job and run it to its end in a child process; returns the id run, None if none waited.
    `ring(job_id)` announces the job again when it went back to the queue (its worker stopping, say).

    The store claims the oldest queued job, which is `job_id` unless an earlier ring is still on
    its way: every queued job has a ring of its own, so each still runs once, in order.
    """
    from graft.jobs.worker import WorkerPool

    pool = WorkerPool(db, concurrency=1, runs_root=runs_root)
    job = pool.store.claim(worker_id())
    if job is None:
        log.info("ring for job %s: nothing queued (already taken or cancelled)", job_id)
        return None
    pool.runs_root.mkdir(parents=True, exist_ok=True)
    _ACTIVE.add(pool)
    try:
        pool.run_claimed(job.id, next(_SLOTS))
    finally:
        _ACTIVE.discard(pool)
    if ring is not None and pool.store.get(job.id).status == "queued":
        ring(job.id)  # another worker may take it up at once, rather than at the next worker start
    return job.id


def _interrupt_running(**_) -> None:
    # a warm shutdown would wait out hours of training: interrupt instead (a train job checkpoints
    # and goes back to the queue; the next worker to start rings for it)
    for pool in list(_ACTIVE):
        pool.stop(timeout=0)


def ring_for_queued(store: JobStore, app) -> int:
    """One ring per queued job: what a crashed API or a lost message left unannounced."""
    queued = store.list(status="queued", limit=10_000)
    for job in reversed(queued):  # oldest first
        app.send_task(TASK, args=[job.id], queue=QUEUE)
    return len(queued)


def _recover_loop(store: JobStore, app, stop: threading.Event, stale_after_s: float) -> None:
    while not stop.wait(max(1.0, stale_after_s / 3)):
        try:
            for r in store.recover(stale_after_s):
                log.warning("job %s %s: %s", r["id"], r["action"], r["reason"])
                if r["action"] == "requeued":
                    app.send_task(TASK, args=[r["id"]], queue=QUEUE)
        except Exception:  # the database or broker may be away for a moment: keep trying
            log.exception("recovering jobs failed")


def run_worker(broker: str | None = None, db: str | Path | None = None, concurrency: int = 1,
               runs_root: str | Path | None = None, stale_after_s: float = 30.0, loglevel: str = "INFO") -> None:
    """Start a Celery worker on graft's queue (blocks until it is stopped, e.g. by SIGTERM)."""
    app = make_app(broker, db, runs_root)
    store = JobStore(app.conf.graft_db)
    stop = threading.Event()
    for r in store.recover(stale_after_s):
        log.warning("job %s %s: %s", r["id"], r["action"], r["reason"])
    rung = ring_for_queued(store, app)
    log.warning("graft worker: %d queued job(s) announced; jobs in %s", rung, app.conf.graft_runs_root)
    _celery().signals.worker_shutting_down.connect(_interrupt_running, weak=False)
    threading.Thread(target=_recover_loop, args=(store, app, stop, stale_after_s), daemon=True,
                     name="graft-recover").start()
    # threads: each slot only waits on its job's child process, so no process pool is needed
    try:
        app.worker_main(["worker", f"--loglevel={loglevel}", "-Q", QUEUE, "--pool", "threads",
                         "--concurrency", str(concurrency), "--hostname", f"graft@{socket.gethostname()}:{os.getpid()}",
                         "--without-gossip", "--without-mingle"])
    finally:
        stop.set()


def ping(broker: str | None = None, timeout: float = 3.0) -> list[str]:
    """Names of this host's graft workers that answer through the broker (the container healthcheck)."""
    replies = make_app(broker).control.ping(timeout=timeout)
    mine = f"graft@{socket.gethostname()}:"
    return [name for reply in replies for name in reply if name.startswith(mine)]


if __name__ == "__main__":  # `python -m graft.jobs.celery_backend ping`: exit 0 when a worker here answers
    import sys

    raise SystemExit(0 if sys.argv[1:] == ["ping"] and ping() else 1)
