"""The app factory: one FastAPI app around a model pool, with its routers, security and error rendering."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

import graft
from graft.inference.pool import ModelPool
from graft.server import (datasets_api, errors, jobs_api, metrics, models_api, openai_api, rag_api, runs_api, serving_api,
                          ui_routes)
from graft.server.jobs_service import JobService
from graft.server.metrics import Monitor
from graft.server.security import require_token
from graft.server.settings import ServerSettings

DESCRIPTION = """graft's model server: the base model and its adapters behind an OpenAI-compatible API,
with every request recorded (JSON under /v1/monitor, Prometheus at /metrics).

Once the server has a token, every route but /health wants `Authorization: Bearer TOKEN`."""


def create_app(pool: ModelPool | None = None, settings: ServerSettings | None = None, monitor: Monitor | None = None) -> FastAPI:
    settings = settings or ServerSettings.from_env()
    app = FastAPI(title="graft", version=graft.__version__, description=DESCRIPTION,
                  max_body_size=settings.max_request_bytes, lifespan=_lifespan)
    app.state.pool, app.state.settings = pool, settings
    app.state.jobs = JobService(settings)
    app.state.monitor = monitor or Monitor(settings.db)
    errors.install(app)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """Liveness, without a token (load balancers and probes have none)."""
        return {"status": "ok"}

    guarded = [Depends(require_token)]
    app.include_router(openai_api.router, dependencies=guarded)
    app.include_router(metrics.router, dependencies=guarded)
    app.include_router(serving_api.router, dependencies=guarded)
    app.include_router(jobs_api.router, dependencies=guarded)
    app.include_router(jobs_api.seed_router, dependencies=guarded)
    # uploads may exceed the app-wide request limit, up to max_upload_bytes
    app.include_router(datasets_api.router, dependencies=guarded, max_body_size=datasets_api.body_limit(settings))
    app.include_router(models_api.router, dependencies=guarded)
    app.include_router(runs_api.router, dependencies=guarded)
    app.include_router(rag_api.router, dependencies=guarded, max_body_size=datasets_api.body_limit(settings))  # document uploads
    app.include_router(ui_routes.router)  # pages hold no data; their API calls carry the token
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """The embedded job workers live as long as the server; jobs a crash left running are recovered first."""
    for job in app.state.jobs.start():
        logging.getLogger("graft.server").warning("job %s %s: %s", job["id"], job["action"], job["reason"])
    try:
        yield
    finally:
        app.state.jobs.stop()
