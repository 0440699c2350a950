"""Re-training after drift: the run's own config on new data, as a new run beside the old one,
trained here or queued as a train job for the web app's workers."""

from __future__ import annotations

import time
from pathlib import Path

from graft.progress import Progress
from graft.train.run_folder import RunFolder


def retrain_config(run_dir: str | Path, data: str, steps: int | None = None, run_name: str | None = None):
    """The run's RunConfig with data.path replaced, a derived run_name and the old run's parent as output_dir."""
    from graft.config import RunConfig, apply_overrides

    folder = RunFolder.open(run_dir)
    raw = folder.load_config().model_dump(mode="json")
    old = folder.path.resolve()
    # an absolute path, so a later drift check of the new run works from any folder; a Hub id stays as it is
    path = str(Path(data).resolve()) if Path(data).exists() else str(data)
    overrides = {"data.path": path, "output_dir": str(old.parent),
                 "run_name": run_name or f"{old.name}-retrain-{time.strftime('%Y%m%d-%H%M%S')}"}
    if steps is not None:
        overrides["train.max_steps"] = steps
    return RunConfig.from_dict(apply_overrides(raw, overrides), source=f"{folder.config} with new data")


def retrain(run_dir: str | Path, data: str, steps: int | None = None, progress: Progress | None = None,
            run_name: str | None = None):
    """Train a new run like `run_dir` on `data`; returns graft.train.recipe.TrainResult."""
    from graft.train.recipe import train

    return train(retrain_config(run_dir, data, steps, run_name), progress)


def submit_retrain(run_dir: str | Path, data: str, steps: int | None = None, db: str | Path | None = None,
                   broker: str | None = None, run_name: str | None = None):
    """Queue the re-training as a train job in graft's job database `db` (the one `graft serve` and
    `graft worker` take jobs from); with a Celery broker (`broker`, else GRAFT_BROKER_URL when set),
    ring for it too. Returns (the queued Job, whether a broker was rung)."""
    from graft.jobs import JobStore
    from graft.jobs.celery_backend import configured_broker, submit

    cfg = retrain_config(run_dir, data, steps, run_name)
    broker = configured_broker(broker)
    return submit(JobStore(db), "train", cfg.model_dump(mode="json"), broker), bool(broker)
