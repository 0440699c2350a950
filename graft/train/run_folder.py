"""The run folder: the one definition of where a run keeps what.

    config.yaml        the resolved RunConfig
    metrics.jsonl      one JSON object per logged step (train and eval rows)
    checkpoints/step-N adapter (PEFT format) + trainer_state.pt + state.json
    adapter/           the final adapter (PEFT format)
    summary.json       what the run did and how it ended
    train.log          messages printed during the run
    export/            what `graft export` wrote (merged/, gguf/), unless told elsewhere
    monitor/           drift reports and charts (`graft monitor drift`)
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from graft.config import RunConfig
from graft.errors import RunError
from graft.paths import safe_name

_STEP_DIR = re.compile(r"^step-(\d+)$")


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    adapter = property(lambda self: self.path / "adapter")
    summary = property(lambda self: self.path / "summary.json")
    log_file = property(lambda self: self.path / "train.log")
    export_dir = property(lambda self: self.path / "export")
    monitor_dir = property(lambda self: self.path / "monitor")

    @staticmethod
    def new_path(cfg: RunConfig) -> Path:
        name = cfg.run_name or f"{safe_name(Path(cfg.model.name).stem)}-{cfg.technique.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        return Path(cfg.output_dir) / safe_name(name)

    @classmethod
    def check_new(cls, cfg: RunConfig) -> Path:
        path = cls.new_path(cfg)
        if path.exists() and any(path.iterdir()):
            raise RunError(f"run folder {path} exists already", hint="pass --resume to continue it, or another --run-name")
        return path

    @classmethod
    def create(cls, cfg: RunConfig) -> "RunFolder":
        """A new folder for a run; never reuses one that exists."""
        path = cls.check_new(cfg)
        path.mkdir(parents=True, exist_ok=True)
        folder = cls(path)
        cfg.save(folder.config)
        return folder

    @classmethod
    def follower(cls, path: str | Path) -> "RunFolder":
        """The folder as ranks other than 0 of a multi-process run see it: they read, rank 0 writes."""
        return _Follower(path)

    @classmethod
    def open(cls, path: str | Path) -> "RunFolder":
        folder = cls(path)
        if not folder.config.is_file():
            raise RunError(f"{path} is not a graft run folder (no config.yaml)")
        return folder

    def load_config(self) -> RunConfig:
        return RunConfig.load(self.config)

    # -- checkpoints ------------------------------------------------------------------------------

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints_dir / f"step-{step:06d}"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, oldest first (a checkpoint is complete once its state.json exists)."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for p in self.checkpoints_dir.iterdir():
            m = _STEP_DIR.match(p.name)
            if m and (p / "state.json").is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest_checkpoint(self) -> tuple[int, Path] | None:
        cps = self.checkpoints()
        return cps[-1] if cps else None

    def prune_checkpoints(self, keep_last: int) -> None:
        for _, p in self.checkpoints()[:-keep_last]:
            shutil.rmtree(p, ignore_errors=True)

    # -- metrics and summary ----------------------------------------------------------------------

    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.metrics.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics.is_file():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]

    def truncate_metrics(self, after_step: int) -> None:
        """Drop rows logged after `after_step`: a resumed run logs those steps again."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= after_step]
        self.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.summary.write_text(json.dumps(summary, indent=2) + "\n")

    def read_summary(self) -> dict[str, Any]:
        return json.loads(self.summary.read_text()) if self.summary.is_file() else {}

    def log(self, message: str) -> None:
        with self.log_file.open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")


class _Follower(RunFolder):
    """A run folder whose writes are no-ops: only rank 0 of a multi-process run writes."""

    def append_metrics(self, row: dict[str, Any]) -> None:
        pass

    def truncate_metrics(self, after_step: int) -> None:
        pass

    def write_summary(self, summary: dict[str, Any]) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def prune_checkpoints(self, keep_last: int) -> None:
        pass
