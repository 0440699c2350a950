"""What the chat side serves, and adding a finished run to it without a restart (the playground's picker)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from graft.errors import ConfigError, NotFoundError
from graft.paths import safe_name
from graft.server.state import Pool, Settings

router = APIRouter(prefix="/api/serving", tags=["serving"])


class Served(BaseModel):
    id: str
    base: str
    adapter: str | None
    technique: str | None
    shared: bool


class AddRun(BaseModel):
    run: str = Field(description="a run folder's name under the server's runs root")
    name: str | None = Field(None, description="the model id to serve it as (default: the run's name)")


@router.get("", response_model=list[Served])
def served(pool: Pool) -> list[Served]:
    """Every model id the chat endpoints answer to."""
    return [Served(id=m.id, base=m.base, adapter=m.adapter, technique=m.technique, shared=m.shared) for m in pool.models()]


@router.post("/adapters", response_model=Served, status_code=201)
def add_run(req: AddRun, pool: Pool, settings: Settings) -> Served:
    """Serve a finished run as a model id; a peft adapter on the pool's base shares it."""
    try:
        folder = settings.runs_path() / safe_name(req.run)
    except ValueError:
        raise ConfigError(f"not a run name: {req.run!r}") from None
    if not (folder / "config.yaml").is_file():
        raise NotFoundError(f"no run '{req.run}' in {settings.runs_path()}")
    name = req.name or folder.name
    known = {m.id: m for m in pool.models()}
    m = known.get(name) or pool.add(name, folder)
    return Served(id=m.id, base=m.base, adapter=m.adapter, technique=m.technique, shared=m.shared)
