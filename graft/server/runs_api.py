"""/api/runs: the run folders under the runs root (config, summary, metrics, files), and
/api/benchmarks: stored benchmark records with their Vega-Lite charts."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel

from graft.errors import ConfigError, NotFoundError
from graft.paths import safe_name
from graft.server.resources import BenchStore, RunsRoot
from graft.train.run_folder import RunFolder

router = APIRouter(prefix="/api", tags=["runs"])


class RunOut(BaseModel):
    name: str
    status: str | None
    technique: str | None
    model: str | None
    steps: int | None
    total_steps: int | None
    final_loss: float | None
    modified: str


class RunDetail(BaseModel):
    name: str
    config: dict[str, Any]
    summary: dict[str, Any]


class FileOut(BaseModel):
    path: str
    bytes: int
    modified: str


class BenchmarkOut(BaseModel):
    name: str
    updated: str
    cells: int
    completed: int
    failed: int
    pruned: int = 0  # tuning trials stopped early (graft tune)


class BenchmarkDetail(BaseModel):
    name: str
    records: list[dict[str, Any]]
    charts: dict[str, dict[str, Any]]


@router.get("/runs", response_model=list[RunOut])
def list_runs(root: RunsRoot) -> list[dict]:
    """Every run folder (one with a config.yaml), newest first."""
    runs = [p for p in root.iterdir() if (p / "config.yaml").is_file()] if root.is_dir() else []
    return [_row(p) for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]


@router.get("/runs/{name}", response_model=RunDetail)
def get_run(name: str, root: RunsRoot) -> dict:
    folder = _run(root, name)
    return {"name": name, "config": _config(folder), "summary": _summary(folder)}


@router.get("/runs/{name}/metrics", response_model=list[dict[str, Any]])
def metrics(name: str, root: RunsRoot) -> list[dict]:
    """metrics.jsonl: one object per logged step (`type` train or eval)."""
    folder = _run(root, name)
    lines = folder.metrics.read_text().splitlines() if folder.metrics.is_file() else []
    return [row for row in map(_json, lines) if isinstance(row, dict)]


@router.get("/runs/{name}/files", response_model=list[FileOut])
def files(name: str, root: RunsRoot) -> list[dict]:
    """Every file in the run folder, by path relative to it (links that lead out are left out)."""
    base = _run(root, name).path.resolve()
    found = [p for p in sorted(base.rglob("*")) if p.is_file() and _inside(p, base)]
    return [{"path": p.relative_to(base).as_posix(), "bytes": p.stat().st_size, "modified": _time(p)} for p in found]


@router.get("/runs/{name}/files/{path:path}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, 400: {"description": "the path leaves the run folder"}})
def download(name: str, path: str, root: RunsRoot) -> FileResponse:
    base = _run(root, name).path.resolve()
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts or "\\" in path or "\0" in path:
        raise ConfigError(f"file path {path!r}: expected a path inside the run folder, without '..'")
    target = base.joinpath(*parts)
    if not _inside(target, base):  # a symlink out of the folder
        raise ConfigError(f"file path {path!r} leads out of the run folder")
    if not target.is_file():
        raise NotFoundError(f"run '{name}' has no file {path!r}", hint=f"GET /api/runs/{name}/files lists them")
    return FileResponse(target, filename=target.name)


@router.get("/benchmarks", response_model=list[BenchmarkOut], tags=["benchmarks"])
def list_benchmarks(store: BenchStore) -> list[dict]:
    return store.names()


@router.get("/benchmarks/{name}", response_model=BenchmarkDetail, tags=["benchmarks"])
def get_benchmark(name: str, store: BenchStore) -> dict:
    """The benchmark's records in matrix order and its charts (Vega-Lite v5 specs, by name)."""
    from graft.bench.charts import charts_for

    if name not in {b["name"] for b in store.names()}:  # the store says so with a ConfigError (400)
        raise NotFoundError(f"no benchmark '{name}'", hint="GET /api/benchmarks lists them")
    records = store.records(name)
    return {"name": name, "records": records, "charts": charts_for(records)}


def _run(root: Path, name: str) -> RunFolder:
    try:
        path = root / safe_name(name)
    except ValueError:
        path = None
    if path is None or path.name != name or not (path / "config.yaml").is_file():
        raise NotFoundError(f"no run '{name}'", hint="GET /api/runs lists them")
    return RunFolder(path)


def _row(path: Path) -> dict:
    summary, config = _summary(RunFolder(path)), _config(RunFolder(path))
    return {"name": path.name, "status": summary.get("status"),
            "technique": summary.get("technique") or (config.get("technique") or {}).get("name"),
            "model": (config.get("model") or {}).get("name"), "steps": summary.get("steps"),
            "total_steps": summary.get("total_steps"), "final_loss": summary.get("final_loss"), "modified": _time(path)}


def _summary(folder: RunFolder) -> dict:
    # a running job rewrites summary.json in place: a read in between finds it partial
    summary = _json(folder.summary.read_text()) if folder.summary.is_file() else None
    return summary if isinstance(summary, dict) else {}


def _json(text: str):
    try:
        return json.loads(text)
    except ValueError:  # a line the trainer is still writing
        return None


def _config(folder: RunFolder) -> dict:
    try:
        raw = yaml.safe_load(folder.config.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _inside(path: Path, base: Path) -> bool:
    return path.resolve().is_relative_to(base)


def _time(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")


