"""Run one job by its kind; returns the result stored with it (JSON).

Run folders live in the jobs runs root and nowhere else: a train job's folder is
`RUNS_ROOT/<run_name or job id>`, a benchmark's cells go under `RUNS_ROOT/benchmarks/`, and an
evaluate or export job names its run by folder name or train job id, never by path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from graft.errors import RunError
from graft.jobs.reporting import JobProgress
from graft.jobs.store import Job, JobNotFoundError, JobStore
from graft.paths import safe_name
from graft.progress import Progress


def run_dir_for(job: Job, runs_root: str | Path) -> Path | None:
    """Where the job's run folder goes (train jobs only)."""
    if job.kind != "train":
        return None
    return Path(runs_root) / safe_name(job.spec.get("run_name") or job.id)


def execute(store: JobStore, job: Job, runs_root: str | Path, overdue_stop=None) -> dict:
    """Run the job; `overdue_stop()` (see JobProgress) names a stop the job has not yet noticed."""
    runs_root = Path(runs_root)
    run_dir = run_dir_for(job, runs_root)
    if run_dir is not None:
        store.set_run_dir(job.id, run_dir)
    progress = JobProgress(store, job.id, run_dir / "metrics.jsonl" if run_dir else None, overdue_stop=overdue_stop)
    result = RUNNERS[job.kind](store, job, runs_root, progress)
    return json.loads(json.dumps(result, default=str))  # Paths and numpy scalars become plain JSON


def _train(store: JobStore, job: Job, runs_root: Path, progress: Progress) -> dict:
    from graft.config import RunConfig
    from graft.train.recipe import train
    from graft.train.run_folder import RunFolder

    run_dir = run_dir_for(job, runs_root)
    cfg = RunConfig.from_dict({**job.spec, "output_dir": str(runs_root), "run_name": run_dir.name}, source="train spec")
    folder = RunFolder(run_dir)
    resume = run_dir if folder.config.is_file() and folder.latest_checkpoint() else None
    if resume is None and folder.config.is_file() and job.attempts > 1:
        raise RunError(f"{run_dir} has no checkpoint to resume from after the run stopped")
    done = train(cfg, progress, resume_dir=resume)
    return {"run_dir": str(done.run_dir), "resumed": resume is not None, "summary": done.summary}


def _evaluate(store: JobStore, job: Job, runs_root: Path, progress: Progress) -> dict:
    from graft.evaluate import evaluate

    spec = job.spec
    return evaluate(run_folder(store, spec["run"], runs_root), data=spec.get("data"), limit=spec.get("limit"),
                    compare_base=spec.get("compare_base", False), max_new_tokens=spec.get("max_new_tokens"),
                    batch_size=spec.get("batch_size", 8), progress=progress)


def _export(store: JobStore, job: Job, runs_root: Path, progress: Progress) -> dict:
    from graft.export import export

    spec = job.spec
    manifests = export(run_folder(store, spec["run"], runs_root), fmt=spec.get("format", "merged"),
                       quants=spec.get("quants"), dtype=spec.get("dtype", "float32"), verify=spec.get("verify", True),
                       progress=progress)
    return {"manifests": manifests}


def _benchmark(store: JobStore, job: Job, runs_root: Path, progress: Progress) -> dict:
    from graft.bench.matrix import Matrix
    from graft.bench.runner import run_matrix
    from graft.bench.store import Store

    matrix = Matrix.from_dict(job.spec, source="benchmark spec")
    results = Store(store.engine.url.render_as_string(hide_password=False))  # the jobs' own database
    records = run_matrix(matrix, results, runs_root / "benchmarks", progress)
    return {"name": matrix.name, "cells": len(records),
            "completed": sum(r["status"] == "completed" for r in records), "records": records}


def _download(store: JobStore, job: Job, runs_root: Path, progress: Progress) -> dict:
    from graft.models.hub import download

    hub_id = job.spec["hub_id"]
    progress.log(f"downloading {hub_id} from the Hugging Face Hub")
    return {"name": hub_id, "path": str(download(hub_id, revision=job.spec.get("revision"), progress=progress))}


def run_folder(store: JobStore, name: str, runs_root: Path) -> Path:
    """A run named by a train job's id or by its folder name in the runs root."""
    try:
        job = store.get(name)
        if job.kind == "train" and job.run_dir:
            return Path(job.run_dir)
    except JobNotFoundError:
        pass
    path = Path(runs_root) / safe_name(name)
    if not (path / "config.yaml").is_file():
        raise RunError(f"no run {name!r} in {runs_root}")
    return path


RUNNERS: dict[str, Callable[[JobStore, Job, Path, Any], dict]] = {
    "train": _train, "evaluate": _evaluate, "export": _export, "benchmark": _benchmark, "download": _download}
