"""The child process that runs one claimed job: `python -m graft.jobs.run_one JOB_ID --db URL --runs-root DIR`.

A watcher thread heartbeats, and interrupts the job the way Ctrl-C does (a training run then
checkpoints and marks itself interrupted) when a cancel is asked for, when the job is no longer
ours, or when the parent that started us is gone: nothing runs orphaned. SIGTERM (the pool
stopping) does the same. An interrupted train job with a checkpoint goes back to the queue to
be resumed; any other interrupted job fails with the reason.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
import traceback

from graft.errors import GraftError
from graft.jobs.store import LOST, JobStore, resume_plan, worker_id

HEARTBEAT_S = 1.0
GRACE_S = 2.0  # after this, a stop the job has not noticed is raised at its next progress report


class _Watch:
    """Why the job was interrupted: None until it is."""

    def __init__(self, store: JobStore, job_id: str, me: str):
        self.store, self.job_id, self.me = store, job_id, me
        self.reason: str | None = None
        self.at: float | None = None  # when the interrupt was sent
        self.parent = os.getppid()
        self.done = threading.Event()

    def run(self) -> None:
        ticks = 0
        while not self.done.wait(HEARTBEAT_S / 4):  # the parent check is cheap: do it more often
            ticks += 1
            if os.getppid() != self.parent:
                return self.interrupt("stopped: the process that started this job is gone")
            if ticks % 4 == 0:
                cancel = self.store.heartbeat(self.job_id, self.me)
                if cancel is None:
                    return self.interrupt("lost: the job is no longer running under this worker")
                if cancel:
                    return self.interrupt("cancelled")

    def interrupt(self, reason: str) -> None:
        if self.reason is None and not self.done.is_set():
            self.reason, self.at = reason, time.monotonic()
            os.kill(os.getpid(), signal.SIGINT)  # KeyboardInterrupt in the main thread, as Ctrl-C

    def overdue(self) -> str | None:
        """The reason, once the SIGINT had time to land and the job still reports progress."""
        return self.reason if self.at is not None and time.monotonic() - self.at > GRACE_S else None


def run(job_id: str, db: str, runs_root: str) -> int:
    from graft.jobs.execute import execute

    store, me = JobStore(db), worker_id()
    if store.heartbeat(job_id, me) is None:  # cancelled or taken over before we started
        return 0
    job = store.get(job_id)
    watch = _Watch(store, job_id, me)
    signal.signal(signal.SIGTERM, lambda *_: watch.interrupt("stopped: the worker pool is stopping"))
    threading.Thread(target=watch.run, daemon=True, name="job-watch").start()
    try:
        result = execute(store, job, runs_root, overdue_stop=watch.overdue)
        watch.done.set()
        store.finish(job_id, "completed", result, worker=me)
    except KeyboardInterrupt:
        watch.done.set()
        _interrupted(store, job_id, me, watch.reason or "stopped: interrupted (SIGINT)")
    except GraftError as e:
        watch.done.set()
        store.finish(job_id, "failed", error=str(e) + (f" ({e.hint})" if e.hint else ""), worker=me)
    except BaseException as e:  # noqa: BLE001 - whatever went wrong is the job's failure, with its traceback
        watch.done.set()
        store.add_event(job_id, "log", {"message": traceback.format_exc()})
        store.finish(job_id, "failed", error=f"{type(e).__name__}: {e}", worker=me)
    return 0


def _interrupted(store: JobStore, job_id: str, me: str, reason: str) -> None:
    job = store.get(job_id)
    if reason == "cancelled":
        store.finish(job_id, "cancelled", result={"run_dir": job.run_dir} if job.run_dir else None,
                     error="cancelled by request", worker=me)
    elif reason.startswith("lost"):
        pass  # someone else owns the job now
    elif plan := resume_plan(job):
        store.requeue(job_id, f"{reason}; {plan}", worker=me)
    else:
        store.finish(job_id, "failed", error=f"{LOST} ({reason})", worker=me)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graft.jobs.run_one", description=__doc__.splitlines()[0])
    parser.add_argument("job_id")
    parser.add_argument("--db", required=True, help="SQLAlchemy URL or SQLite file of the job store")
    parser.add_argument("--runs-root", required=True, help="where run folders go")
    args = parser.parse_args(argv)
    return run(args.job_id, args.db, args.runs_root)


if __name__ == "__main__":
    raise SystemExit(main())
