"""What the routers share, kept on `app.state` by create_app, as FastAPI dependencies.
(The request monitor's dependency lives with it, in metrics.py.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from graft.inference.pool import ModelPool
from graft.server.settings import ServerSettings


def _pool(request: Request) -> ModelPool:
    return request.app.state.pool


def _settings(request: Request) -> ServerSettings:
    return request.app.state.settings


Pool = Annotated[ModelPool, Depends(_pool)]
Settings = Annotated[ServerSettings, Depends(_settings)]
