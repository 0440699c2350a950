"""What the routers share, kept on `app.state` by create_app, as FastAPI dependencies.
(The request monitor's dependency lives with it, in metrics.py.)"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from graft.inference.pool import ModelPool
from graft.server.settings import ServerSettings


_LOADING = threading.Lock()


def _pool(request: Request) -> ModelPool:
    """The app's pool; a server started without a model loads its default base at the first request."""
    state = request.app.state
    if state.pool is None:
        with _LOADING:
            if state.pool is None:
                state.pool = ModelPool(state.settings.default_model)
    return state.pool


def _settings(request: Request) -> ServerSettings:
    return request.app.state.settings


Pool = Annotated[ModelPool, Depends(_pool)]
Settings = Annotated[ServerSettings, Depends(_settings)]
