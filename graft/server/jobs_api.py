"""/api/jobs: submit, list, get and cancel jobs; their logs, a live event stream (SSE), and the
trained adapter as a zip. Expects `app.state.jobs` to be a JobService."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from graft.jobs import KINDS, STATUSES, Job, JobStore
from graft.jobs.store import FINISHED

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
# the seed's names for the same operations: POST /models/train and GET /models/progress
seed_router = APIRouter(prefix="/api/models", tags=["jobs"])
POLL_S = 0.25
KEEPALIVE_S = 15.0


class SubmitJob(BaseModel):
    kind: Literal[KINDS]  # type: ignore[valid-type]
    spec: dict[str, Any] = Field(..., description="train: a run config; evaluate/export: {run, ...}; benchmark: a matrix; "
                                                 "download: {hub_id, revision?}")


class JobOut(BaseModel):
    id: str
    kind: str
    spec: dict[str, Any]
    status: Literal[STATUSES]  # type: ignore[valid-type]
    created: datetime
    started: datetime | None
    finished: datetime | None
    attempts: int
    worker: str | None
    heartbeat: datetime | None
    cancel_requested: bool
    run_dir: str | None
    result: dict[str, Any] | None
    error: str | None
    progress: dict[str, Any] | None


class TrainProgress(BaseModel):
    id: str
    status: Literal[STATUSES]  # type: ignore[valid-type]
    run_dir: str | None
    task: str | None = Field(description="what the job is doing now: train, eval, ...")
    step: int | None = Field(description="optimizer steps done (kept after training, while it evaluates and saves)")
    total: int | None = Field(description="optimizer steps in all")
    fraction: float | None = Field(description="step / total")
    loss: float | None = Field(description="the latest training loss")
    error: str | None


class EventOut(BaseModel):
    seq: int
    time: datetime
    kind: str
    payload: dict[str, Any]


def _store(request: Request) -> JobStore:
    return request.app.state.jobs.store


def _job(store: JobStore, job_id: str) -> Job:
    return store.get(job_id)  # an unknown id is JobNotFoundError: a 404


@router.post("", status_code=201, response_model=JobOut)
def submit(body: SubmitJob, request: Request) -> dict:
    return request.app.state.jobs.submit(body.kind, body.spec).to_dict()


@router.get("", response_model=list[JobOut])
def list_jobs(request: Request, status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
              kind: Literal[KINDS] | None = None, limit: int = Query(100, ge=1, le=1000)) -> list[dict]:  # type: ignore[valid-type]
    return [j.to_dict() for j in _store(request).list(status, kind, limit)]


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, request: Request) -> dict:
    return _job(_store(request), job_id).to_dict()


@router.post("/{job_id}/cancel", response_model=JobOut)
def cancel(job_id: str, request: Request) -> dict:
    store = _store(request)
    _job(store, job_id)
    return store.cancel(job_id).to_dict()


@seed_router.post("/train", status_code=201, response_model=JobOut)
def train(spec: dict[str, Any], request: Request) -> dict:
    """Queue a training run: the body is a run config (as `graft train -c` reads); the same as
    POST /api/jobs with kind train. Follow it with GET /api/models/progress?job_id=ID."""
    return request.app.state.jobs.submit("train", spec).to_dict()


@seed_router.get("/progress", response_model=list[TrainProgress])
def progress(request: Request, job_id: str | None = None) -> list[dict]:
    """How far training has got: the train job `job_id`, or every queued and running one."""
    store = _store(request)
    if job_id is not None:
        job = _job(store, job_id)
        if job.kind != "train":
            raise HTTPException(409, f"job {job_id} is a {job.kind} job, not a training run")
        jobs = [job]
    else:
        jobs = [j for status in ("running", "queued") for j in store.list(status, "train", 1000)]
    return [_train_progress(j) for j in jobs]


def _train_progress(job: Job) -> dict:
    now = job.progress or {}
    train = (now.get("tasks") or {}).get("train", {})
    step, total, loss = train.get("completed"), train.get("total"), train.get("loss")
    return {"id": job.id, "status": job.status, "run_dir": job.run_dir, "task": now.get("task"), "step": step,
            "total": total, "fraction": step / total if step is not None and total else None,
            "loss": loss if isinstance(loss, (int, float)) else None, "error": job.error}


@router.get("/{job_id}/logs", response_model=list[EventOut])
def logs(job_id: str, request: Request, after: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=10000)) -> list[dict]:
    store = _store(request)
    _job(store, job_id)
    return store.events(job_id, after, kind="log", limit=limit)


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "progress, metric, log and status events"}})
def events(job_id: str, request: Request, after: int = Query(0, ge=0),
           last_event_id: int | None = Header(None, ge=0)) -> StreamingResponse:
    """Server-Sent Events (`id` = seq, `event` = kind, `data` = payload) until the job ends; resume
    with `Last-Event-ID` or `?after=`."""
    store = _store(request)
    _job(store, job_id)
    start = last_event_id if last_event_id is not None else after
    return StreamingResponse(_stream(store, job_id, start, request), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(store: JobStore, job_id: str, after: int, request: Request):
    idle = 0.0
    while not await request.is_disconnected():
        # read the status first: events written before it was read are then all in the batch below
        finished = (await run_in_threadpool(store.get, job_id)).status in FINISHED
        batch = await run_in_threadpool(store.events, job_id, after)
        for e in batch:
            after = e["seq"]
            yield f"id: {e['seq']}\nevent: {e['kind']}\ndata: {json.dumps({**e['payload'], 'time': e['time']})}\n\n"
        if finished and len(batch) < 1000:
            return
        idle = 0.0 if batch else idle + POLL_S
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield ": keep-alive\n\n"
        if not batch:
            await asyncio.sleep(POLL_S)


@router.get("/{job_id}/artifacts/adapter", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}, "description": "the trained adapter folder, zipped"}})
def adapter(job_id: str, request: Request) -> FileResponse:
    job = _job(_store(request), job_id)
    if job.kind != "train" or job.status != "completed":
        raise HTTPException(409, f"job {job_id} is a {job.kind} job, {job.status}: only a completed train job has an adapter")
    folder = Path(job.run_dir or "") / "adapter"
    if not folder.is_dir():
        raise HTTPException(404, f"the adapter of job {job_id} is gone from {folder}")
    tmp = tempfile.mkdtemp(prefix="graft-adapter-")
    archive = shutil.make_archive(str(Path(tmp) / "adapter"), "zip", folder)
    return FileResponse(archive, media_type="application/zip", filename=f"{Path(job.run_dir).name}-adapter.zip",
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))
