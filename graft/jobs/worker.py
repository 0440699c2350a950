"""WorkerPool: the embedded worker. `concurrency` slots; each claims the oldest queued job and runs
it in a child process of its own (graft.jobs.run_one), so a cancel can interrupt it like Ctrl-C
and a crash of the job does not take the pool down. At most `concurrency` jobs run at once; the
rest wait queued. Recovery of jobs whose worker died runs at start and then periodically.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from graft.db import as_url
from graft.jobs.store import JobStore, worker_id
from graft.paths import graft_home

log = logging.getLogger("graft.jobs")


class WorkerPool:
    def __init__(self, store_url: str | Path | None = None, concurrency: int = 1, runs_root: str | Path | None = None,
                 stale_after_s: float = 30.0, poll_s: float = 0.5):
        self.url = as_url(store_url)
        self.store = JobStore(self.url)
        self.concurrency = concurrency
        self.runs_root = Path(runs_root) if runs_root else graft_home() / "runs"
        self.stale_after_s, self.poll_s = stale_after_s, poll_s
        self.recovered: list[dict] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._children: dict[int, subprocess.Popen] = {}

    def start(self) -> list[dict]:
        """Recover what a previous run left running, then start the slots; returns what was recovered."""
        self.runs_root.mkdir(parents=True, exist_ok=True)
        self.recovered = self.store.recover(self.stale_after_s)
        for r in self.recovered:
            log.warning("job %s %s: %s", r["id"], r["action"], r["reason"])
        self._stop.clear()
        targets = [self._recover_loop] + [self._slot] * self.concurrency
        self._threads = [threading.Thread(target=t, args=(i,), daemon=True, name=f"graft-jobs-{i}")
                         for i, t in enumerate(targets)]
        for t in self._threads:
            t.start()
        return self.recovered

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming; interrupt running jobs (a train job checkpoints and is re-queued to resume)."""
        self._stop.set()
        for child in list(self._children.values()):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    @property
    def running(self) -> int:
        return sum(c.poll() is None for c in self._children.values())

    def _slot(self, index: int) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim(worker_id())
            except Exception:  # the database may be away for a moment: keep the slot alive
                log.exception("claiming a job failed")
                job = None
            if job is None:
                self._stop.wait(self.poll_s)
                continue
            self.run_claimed(job.id, index)

    def run_claimed(self, job_id: str, slot: int = 0) -> None:
        """Run a job this process claimed (store.claim) in a child process, to its end; a child that
        dies without reporting fails the job with its exit code. (Other backends, Celery say, use this.)"""
        logs = self.runs_root / ".job-logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = logs / f"{job_id}.log"
        with out.open("ab") as sink:
            child = subprocess.Popen([sys.executable, "-m", "graft.jobs.run_one", job_id, "--db", self.url,
                                      "--runs-root", str(self.runs_root)], stdout=sink, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
            self._children[slot] = child
            if self._stop.is_set():  # stop() ran between the claim and the start
                child.send_signal(signal.SIGTERM)
            code = child.wait()
        job = self.store.get(job_id)
        if job.status == "running" and job.worker in (worker_id(), f"{worker_id().rpartition(':')[0]}:{child.pid}"):
            tail = out.read_text(errors="replace")[-2000:].strip()
            self.store.add_event(job_id, "log", {"message": tail})
            self.store.finish(job_id, "failed", error=f"the job process exited with code {code} before it finished"
                              f"{' (killed by signal ' + str(-code) + ')' if code < 0 else ''}", worker=job.worker)

    def _recover_loop(self, _index: int) -> None:
        while not self._stop.wait(max(1.0, self.stale_after_s / 3)):
            try:
                for r in self.store.recover(self.stale_after_s):
                    log.warning("job %s %s: %s", r["id"], r["action"], r["reason"])
            except Exception:
                log.exception("recovering jobs failed")
