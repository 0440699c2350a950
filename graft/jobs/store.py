"""The jobs and job_events tables, and every change of a job's state.

Every transition is one conditional UPDATE (`... WHERE status = 'queued'`, checked by rowcount),
so several API processes and worker processes can share the database (SQLite or PostgreSQL)
without a job being claimed twice or a finished job being reopened.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from graft.db import ensure_tables
from graft.errors import ConflictError, NotFoundError

KINDS = ("train", "evaluate", "benchmark", "export", "download")
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
FINISHED = ("completed", "failed", "cancelled")
MAX_ATTEMPTS = 3  # a job that takes its worker down every time must not loop forever
LOST = "the server or worker stopped while it ran"


class JobNotFoundError(NotFoundError):
    """No job has this id."""


class JobStateError(ConflictError):
    """The job is not in a state that allows this (cancelling a finished job, say)."""


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    spec: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(300), nullable=True)
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    run_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    progress: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class EventRow(Base):
    __tablename__ = "job_events"

    # one sequence for the whole table: increasing per job too, with no race between writers
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(20))  # log | metric | progress | status
    payload: Mapped[dict] = mapped_column(JSON)


@dataclass
class Job:
    id: str
    kind: str
    spec: dict
    status: str
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    attempts: int = 0
    worker: str | None = None
    heartbeat: datetime | None = None
    cancel_requested: bool = False
    run_dir: str | None = None
    result: dict | None = None
    error: str | None = None
    progress: dict | None = None

    @classmethod
    def from_row(cls, row: JobRow) -> "Job":
        job = cls(**{f.name: getattr(row, f.name) for f in fields(cls)})
        for name in ("created", "started", "finished", "heartbeat"):
            setattr(job, name, _utc(getattr(job, name)))
        return job

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("created", "started", "finished", "heartbeat"):
            out[name] = out[name].isoformat() if out[name] else None
        return out


def now() -> datetime:
    return datetime.now(timezone.utc)


def worker_id() -> str:
    """This process as a worker: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JobStore:
    def __init__(self, where: str | Path | None = None):
        self.engine = ensure_tables(Base.metadata, where)

    # -- submitting and reading ---------------------------------------------------------------

    def submit(self, kind: str, spec: dict) -> Job:
        """Validate `spec` for `kind` (ConfigError naming the field) and queue the job."""
        from graft.errors import ConfigError
        from graft.jobs.specs import validate

        if kind not in KINDS:
            raise ConfigError(f"kind: unknown job kind {kind!r}; expected one of {', '.join(KINDS)}")
        row = JobRow(id=uuid.uuid4().hex[:12], kind=kind, spec=validate(kind, spec), status="queued", created=now(),
                     attempts=0, cancel_requested=False)
        with Session(self.engine) as s, s.begin():
            s.add(row)
            s.flush()
            s.add(EventRow(job_id=row.id, time=row.created, kind="status", payload={"status": "queued"}))
            job = Job.from_row(row)
        return job

    def get(self, job_id: str) -> Job:
        with Session(self.engine) as s:
            row = s.get(JobRow, job_id)
            if row is None:
                raise JobNotFoundError(f"no job with id {job_id!r}")
            return Job.from_row(row)

    def list(self, status: str | None = None, kind: str | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""
        query = select(JobRow).order_by(JobRow.created.desc(), JobRow.id).limit(limit)
        if status:
            query = query.where(JobRow.status == status)
        if kind:
            query = query.where(JobRow.kind == kind)
        with Session(self.engine) as s:
            return [Job.from_row(r) for r in s.scalars(query)]

    # -- events --------------------------------------------------------------------------------

    def add_event(self, job_id: str, kind: str, payload: dict, progress: dict | None = None) -> int:
        """Append an event (and, given `progress`, make it the job's latest progress); returns its seq."""
        with Session(self.engine) as s, s.begin():
            event = EventRow(job_id=job_id, time=now(), kind=kind, payload=payload)
            s.add(event)
            if progress is not None:
                s.execute(update(JobRow).where(JobRow.id == job_id).values(progress=progress))
            s.flush()
            return event.seq

    def events(self, job_id: str, after: int = 0, kind: str | None = None, limit: int = 1000) -> list[dict]:
        query = (select(EventRow).where(EventRow.job_id == job_id, EventRow.seq > after)
                 .order_by(EventRow.seq).limit(limit))
        if kind:
            query = query.where(EventRow.kind == kind)
        with Session(self.engine) as s:
            return [{"seq": e.seq, "time": _utc(e.time).isoformat(), "kind": e.kind, "payload": e.payload}
                    for e in s.scalars(query)]

    # -- state changes -------------------------------------------------------------------------

    def claim(self, worker: str) -> Job | None:
        """The oldest queued job, now running under `worker`; None when nothing waits."""
        for _ in range(20):  # another claimer may win the row we picked: pick again
            with Session(self.engine) as s:  # read apart from the write: SQLite would deadlock on the upgrade
                picked = s.scalar(select(JobRow.id).where(JobRow.status == "queued")
                                  .order_by(JobRow.created, JobRow.id).limit(1))
            if picked is None:
                return None
            with Session(self.engine) as s, s.begin():
                t = now()
                won = s.execute(update(JobRow).where(JobRow.id == picked, JobRow.status == "queued").values(
                    status="running", worker=worker, started=t, heartbeat=t, finished=None,
                    attempts=JobRow.attempts + 1)).rowcount == 1
                if won:
                    row = s.get(JobRow, picked)
                    s.add(EventRow(job_id=picked, time=t, kind="status",
                                   payload={"status": "running", "worker": worker, "attempt": row.attempts}))
                    s.flush()
                    return Job.from_row(row)
        return None

    def heartbeat(self, job_id: str, worker: str) -> bool | None:
        """Mark the job alive under `worker`; returns whether a cancel was asked for, or None when
        the job is no longer running (recovered elsewhere, say): its runner should stop."""
        with Session(self.engine) as s, s.begin():
            done = s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running")
                             .values(heartbeat=now(), worker=worker)).rowcount
            return bool(s.scalar(select(JobRow.cancel_requested).where(JobRow.id == job_id))) if done else None

    def set_run_dir(self, job_id: str, run_dir: str | Path) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(update(JobRow).where(JobRow.id == job_id).values(run_dir=str(run_dir)))

    def cancel(self, job_id: str) -> Job:
        """Queued: cancelled at once. Running: flagged; its worker interrupts it. Finished: JobStateError."""
        with Session(self.engine) as s, s.begin():
            t = now()
            if s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "queued").values(
                    status="cancelled", cancel_requested=True, finished=t, error="cancelled before it started")).rowcount:
                s.add(EventRow(job_id=job_id, time=t, kind="status", payload={"status": "cancelled"}))
            elif s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running")
                           .values(cancel_requested=True)).rowcount:
                s.add(EventRow(job_id=job_id, time=t, kind="log", payload={"message": "cancel requested"}))
        job = self.get(job_id)
        if job.status in FINISHED and not job.cancel_requested:
            raise JobStateError(f"job {job_id} is {job.status} already; only queued or running jobs can be cancelled")
        return job

    def finish(self, job_id: str, status: str, result: dict | None = None, error: str | None = None,
               worker: str | None = None) -> bool:
        """Running -> completed/failed/cancelled; False when it was not running (under `worker`, if given)."""
        if status not in FINISHED:
            raise ValueError(f"not a final status: {status}")
        where = [JobRow.id == job_id, JobRow.status == "running"] + ([JobRow.worker == worker] if worker else [])
        with Session(self.engine) as s, s.begin():
            t = now()
            if not s.execute(update(JobRow).where(*where).values(
                    status=status, finished=t, result=result, error=error)).rowcount:
                return False
            s.add(EventRow(job_id=job_id, time=t, kind="status",
                           payload={"status": status, **({"error": error} if error else {})}))
            return True

    def requeue(self, job_id: str, reason: str, worker: str | None = None) -> bool:
        """Running -> queued, to be resumed by the next free worker."""
        where = [JobRow.id == job_id, JobRow.status == "running"] + ([JobRow.worker == worker] if worker else [])
        with Session(self.engine) as s, s.begin():
            if not s.execute(update(JobRow).where(*where).values(status="queued", worker=None, heartbeat=None)).rowcount:
                return False
            s.add(EventRow(job_id=job_id, time=now(), kind="status", payload={"status": "queued", "reason": reason}))
            return True

    # -- recovery ------------------------------------------------------------------------------

    def recover(self, stale_after_s: float = 30.0) -> list[dict]:
        """Running jobs whose worker is gone (heartbeat older than `stale_after_s`, or a dead pid on
        this host): a train job with a checkpoint is re-queued to resume, and so is a download (the
        Hub cache keeps the files it finished); any other is failed with the reason (cancelled, if a
        cancel was asked for). Returns [{id, action, reason}]."""
        done = []
        for job in self.list(status="running", limit=10_000):
            gone = _gone(job, stale_after_s)
            if gone is None:
                continue
            why, plan = f"{LOST} ({gone})", resume_plan(job)
            if job.cancel_requested:
                action = "cancelled" if self.finish(job.id, "cancelled", error=why, worker=job.worker) else None
            elif plan and job.attempts < MAX_ATTEMPTS:
                why += f"; {plan}"
                action = "requeued" if self.requeue(job.id, why, worker=job.worker) else None
            else:
                if plan:
                    why += f"; not resumed: it was started {job.attempts} times"
                action = "failed" if self.finish(job.id, "failed", error=why, worker=job.worker) else None
            if action:
                done.append({"id": job.id, "action": action, "reason": why})
        return done


def resume_plan(job: Job) -> str | None:
    """How a stopped job goes on if it is queued again, or None when it cannot: a train job from its
    latest checkpoint, a download where it stopped (the Hub cache keeps the files it finished)."""
    if job.kind == "download":
        return "downloading again (files already fetched are kept)"
    step = resumable(job)
    return f"resuming from checkpoint step {step}" if step else None


def resumable(job: Job) -> int | None:
    """The step of the train job's latest checkpoint, if it has one to resume from."""
    if job.kind != "train" or not job.run_dir:
        return None
    from graft.train.run_folder import RunFolder

    folder = RunFolder(job.run_dir)
    latest = folder.latest_checkpoint() if folder.config.is_file() else None
    return latest[0] if latest else None


def _gone(job: Job, stale_after_s: float) -> str | None:
    """Why the job's worker counts as gone, or None while it looks alive."""
    host, _, pid = (job.worker or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return f"worker {job.worker} is not running"
    if job.heartbeat is None or now() - job.heartbeat > timedelta(seconds=stale_after_s):
        return f"worker {job.worker} sent no heartbeat for over {stale_after_s:g} s"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) is not running a job
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _utc(t: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time stored here is UTC
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t
