"""Request monitoring: each finished chat completion becomes a row in graft's database (RequestLog)
and a sample in Prometheus metrics on the app's own registry; routes to read both back."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import select
from sqlalchemy.orm import Session

from graft.inference.pool import ModelInfo
from graft.inference.stream import Usage
from graft.monitor.requests import RequestLog, RequestRow, Served
from graft.server.schemas import ModelSummary, RequestList, RequestRecord, Summary

log = logging.getLogger("graft.server")

SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
SPEEDS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


class Monitor:
    def __init__(self, db: str | None = None):
        self.log = RequestLog(db)
        self.registry = r = CollectorRegistry()  # per app: two apps in one process keep their own counts
        self.requests = Counter("graft_requests", "Chat completions finished", ["model", "status"], registry=r)
        self.active = Gauge("graft_requests_in_progress", "Chat completions being answered", ["model"], registry=r)
        self.latency = Histogram("graft_request_latency_seconds", "Request in to last token out", ["model"],
                                 buckets=SECONDS, registry=r)
        self.first_token = Histogram("graft_time_to_first_token_seconds", "Request in to first text out", ["model"],
                                     buckets=SECONDS, registry=r)
        self.speed = Histogram("graft_completion_tokens_per_second", "Completion tokens over generation time",
                               ["model"], buckets=SPEEDS, registry=r)
        self.prompt_tokens = Counter("graft_prompt_tokens", "Prompt tokens read", ["model"], registry=r)
        self.completion_tokens = Counter("graft_completion_tokens", "Completion tokens written", ["model"], registry=r)

    def track(self, info: ModelInfo, prompt: str | None, stream: bool) -> "Tracker":
        return Tracker(self, info, prompt, stream)

    def record(self, served: Served) -> None:
        m = served.model
        self.requests.labels(m, served.status).inc()
        self.latency.labels(m).observe(served.latency_s)
        if served.first_token_s is not None:
            self.first_token.labels(m).observe(served.first_token_s)
        if served.status == "ok":
            self.speed.labels(m).observe(served.tokens_per_s)
        self.prompt_tokens.labels(m).inc(served.prompt_tokens)
        self.completion_tokens.labels(m).inc(served.completion_tokens)
        try:
            self.log.record(served)
        except Exception:  # a full disk or a locked database must not fail the reply already given
            log.exception("could not record a served request in the database")


class Tracker:
    """Times one request from its arrival and records it once, however it ends."""

    def __init__(self, monitor: Monitor, info: ModelInfo, prompt: str | None, stream: bool):
        self.monitor, self.info, self.prompt, self.stream = monitor, info, prompt, stream
        self.start, self.first, self.done = time.perf_counter(), None, False
        monitor.active.labels(info.id).inc()

    def first_piece(self) -> None:
        if self.first is None:
            self.first = time.perf_counter() - self.start

    def finish(self, usage: Usage) -> None:
        self._record(usage, "ok", None)

    def fail(self, error: str, usage: Usage | None = None) -> None:
        self._record(usage, "error", error)

    def _record(self, usage: Usage | None, status: str, error: str | None) -> None:
        if self.done:
            return
        self.done = True
        self.monitor.active.labels(self.info.id).dec()
        completion = usage.completion_tokens if usage else 0
        speed = completion / usage.seconds if usage and usage.seconds > 0 else 0.0
        self.monitor.record(Served(
            model=self.info.id, base=self.info.base, adapter=self.info.adapter, prompt=self.prompt,
            prompt_tokens=usage.prompt_tokens if usage else 0, completion_tokens=completion,
            latency_s=time.perf_counter() - self.start, first_token_s=self.first, tokens_per_s=speed,
            stream=self.stream, status=status, error=error))


def _monitor(request: Request) -> Monitor:
    return request.app.state.monitor


Monitoring = Annotated[Monitor, Depends(_monitor)]

router = APIRouter(tags=["monitor"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(monitor: Monitoring) -> Response:
    """Prometheus text format: requests by model and status, latency, time to first token, tokens/s, tokens."""
    return Response(generate_latest(monitor.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/monitor/requests", response_model=RequestList)
def requests(monitor: Monitoring, limit: int = Query(100, ge=1, le=10_000), model: str | None = None) -> RequestList:
    """The latest served requests, newest first (the prompt is null when prompt logging is off)."""
    return RequestList(data=[RequestRecord(**row) for row in monitor.log.recent(limit, model)])


@router.get("/v1/monitor/summary", response_model=Summary)
def summary(monitor: Monitoring) -> Summary:
    """Per model: requests, errors, p50/p95 latency, median time to first token, mean tokens/s, tokens."""
    query = select(RequestRow.model, RequestRow.status, RequestRow.latency_s, RequestRow.first_token_s,
                   RequestRow.tokens_per_s, RequestRow.prompt_tokens, RequestRow.completion_tokens)
    by_model: dict[str, list] = {}
    with Session(monitor.log.engine) as s:
        for row in s.execute(query):
            by_model.setdefault(row.model, []).append(row)
    return Summary(data=[_summarize(model, rows) for model, rows in sorted(by_model.items())])


def _summarize(model: str, rows: list) -> ModelSummary:
    ok = [r for r in rows if r.status == "ok"]
    latency = [r.latency_s for r in ok]
    first = [r.first_token_s for r in ok if r.first_token_s is not None]

    def pct(values: list[float], q: float) -> float | None:
        return float(np.percentile(values, q)) if values else None

    return ModelSummary(
        model=model, requests=len(rows), errors=len(rows) - len(ok),
        latency_p50_s=pct(latency, 50), latency_p95_s=pct(latency, 95), first_token_p50_s=pct(first, 50),
        tokens_per_s_mean=float(np.mean([r.tokens_per_s for r in ok])) if ok else None,
        prompt_tokens=sum(r.prompt_tokens for r in rows), completion_tokens=sum(r.completion_tokens for r in rows))
