"""What a run can be built from: models (catalog + downloaded), Hub downloads (as jobs), the technique
registry, and the memory estimate of a RunConfig before anything loads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from pydantic_core import to_jsonable_python

from graft.config import RunConfig
from graft.errors import ConfigError
from graft.jobs.specs import DownloadSpec
from graft.server.jobs_api import JobOut

router = APIRouter(prefix="/api", tags=["models"])


class ModelOut(BaseModel):
    name: str
    params: int | None
    architecture: str
    task: str
    source: str
    cached: str


class OptionOut(BaseModel):
    name: str
    default: Any = None
    required: bool
    type: str
    description: str | None
    json_schema: dict[str, Any] = Field(description="the option's JSON Schema (enums, bounds)")


class TechniqueOut(BaseModel):
    name: str
    family: str
    description: str
    kinds: list[str]
    requires: list[str]
    available: bool
    why_not: str | None = Field(description="what this machine lacks, or why the plugin failed to load")
    source: str
    mergeable: bool | None
    options: list[OptionOut]


class AdviceOut(BaseModel):
    label: str
    changes: dict[str, Any]
    total_bytes: int
    cost: float
    text: str


class EstimateOut(BaseModel):
    model: str
    technique: str
    task: str
    total: int = Field(description="estimated peak bytes")
    fits: bool
    device: dict[str, Any]
    peak_phase: str
    breakdown: dict[str, int] = Field(description="term -> bytes (host terms are shown but not added)")
    terms: list[dict[str, Any]]
    assumptions: list[str]
    advice: list[AdviceOut]


@router.get("/models", response_model=list[ModelOut])
def list_models() -> list[dict]:
    """Bundled catalog models and Hub models already in the local cache."""
    from graft.models.listing import list_models as rows

    return rows()


@router.post("/models/download", status_code=201, response_model=JobOut,
             responses={503: {"description": "the Hub cannot be reached"}})
def download(body: DownloadSpec, request: Request) -> dict:
    """Queue a download of a Hub model's safetensors and tokenizer files into the Hub cache, as a
    job (large models take minutes): follow it at GET /api/jobs/{id}; its result names the folder.
    An offline server answers 503 at once."""
    from graft.models.hub import require_hub

    require_hub(body.hub_id)
    return request.app.state.jobs.submit("download", body.model_dump()).to_dict()


@router.get("/techniques", response_model=list[TechniqueOut], tags=["techniques"])
def techniques() -> list[dict]:
    """Every registered technique (plugins included), its options, and whether it runs here."""
    from graft.techniques import available, broken

    rows = [_technique(t) for t in available().values()]
    rows += [{"name": name, "family": "?", "description": "", "kinds": [], "requires": [], "available": False,
              "why_not": f"failed to load: {why}", "source": "", "mergeable": None, "options": []}
             for name, why in broken().items()]
    return rows


def _technique(t) -> dict:
    missing = t.missing()
    schema = t.settings.model_json_schema().get("properties", {})
    options = [{"name": name, "required": f.is_required(),
                "default": None if f.is_required() else to_jsonable_python(f.get_default(call_default_factory=True)),
                "type": getattr(f.annotation, "__name__", None) or str(f.annotation).replace("typing.", ""),
                "description": f.description, "json_schema": schema.get(name, {})}
               for name, f in t.settings.model_fields.items()]
    return {"name": t.name, "family": t.family, "description": t.description, "kinds": sorted(t.kinds),
            "requires": [r.what for r in t.requires], "available": not missing,
            "why_not": f"needs {', '.join(missing)}" if missing else None, "source": t.source,
            "mergeable": t.mergeable, "options": options}


@router.post("/estimate", response_model=EstimateOut, tags=["memory"])
async def estimate(cfg: RunConfig) -> dict:
    """A run's peak memory before anything loads (the worst case: batch_size x max_length tokens),
    term by term, whether it fits `memory.device`/`memory.vram` (default: this machine), and advice
    when it does not. Reads no data and downloads nothing: a Hub model must be downloaded first."""
    return await run_in_threadpool(_estimate, cfg)


def _estimate(cfg: RunConfig) -> dict:
    from graft.memory import device_for, estimate_run, fmt_bytes
    from graft.models import resolve
    from graft.models.load import ensure_folder
    from graft.techniques import get_technique
    from graft.train.recipe import resolve_task

    device = device_for(cfg.memory.device, cfg.memory.vram)
    folder = ensure_folder(resolve(cfg.model.name, revision=cfg.model.revision, download=False))
    try:
        task = resolve_task(cfg, folder)
        result = estimate_run(cfg, folder, get_technique(cfg.technique.name), cfg.technique.options, task, device)
    except (OSError, ValueError, KeyError, TypeError) as e:
        # a folder with a config.json transformers cannot read, or a technique that cannot apply to it
        raise ConfigError(f"cannot estimate {cfg.model.name!r} with {cfg.technique.name}: {type(e).__name__}: {e}") from None
    out = result.to_dict()
    return {"model": cfg.model.name, "technique": cfg.technique.name, "task": task, "total": result.total_bytes,
            "fits": result.fits, "device": out["device"], "peak_phase": result.peak_phase,
            "breakdown": dict(result.breakdown), "terms": out["terms"], "assumptions": result.assumptions,
            "advice": [{**a, "text": f"{a['label']}: {fmt_bytes(a['total_bytes'])}"} for a in out["advice"]]}
