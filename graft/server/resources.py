"""What the resource routers (datasets, models, runs, benchmarks) share: their folders and stores,
from the app's settings, as FastAPI dependencies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from graft.bench.store import Store
from graft.data.library import DatasetLibrary
from graft.server.state import Settings


def _library(settings: Settings) -> DatasetLibrary:
    return DatasetLibrary(settings.datasets_path())


def _runs_root(settings: Settings) -> Path:
    return settings.runs_path()


def _bench_store(request: Request) -> Store:
    # one per app: creating it checks the tables, which is not worth doing on every request
    state = request.app.state
    if getattr(state, "bench_store", None) is None:
        state.bench_store = Store(state.settings.db)
    return state.bench_store


Library = Annotated[DatasetLibrary, Depends(_library)]
RunsRoot = Annotated[Path, Depends(_runs_root)]
BenchStore = Annotated[Store, Depends(_bench_store)]
