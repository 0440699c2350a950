"""`graft quickstart`: the main job. Fine-tune the bundled SmolLM2 on the built-in order-extraction
task, then score base vs tuned on held-out sentences. Offline, CPU-friendly (minutes, not hours).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from graft.config import RunConfig
from graft.evaluate.evaluate import evaluate
from graft.inference import load_for_inference
from graft.paths import graft_home
from graft.progress import NullProgress, Progress
from graft.quickstart.task import make_rows
from graft.train.recipe import train

MODEL = "smollm2-135m-instruct"


def quickstart_config(output_dir: str, data_dir: Path, steps: int, run_name: str | None) -> RunConfig:
    return RunConfig.from_dict({
        "model": {"name": MODEL},
        "data": {"path": str(data_dir / "train.json"), "eval_path": str(data_dir / "eval.json"), "max_length": 256},
        "technique": {"name": "lora", "r": 16, "alpha": 32, "target_modules": "all-linear"},
        "train": {"max_steps": steps, "batch_size": 8, "lr": 1e-3, "scheduler": "cosine", "warmup_steps": 3,
                  "log_every": 1, "seed": 0},
        "checkpoint": {"every": max(1, steps // 2), "keep_last": 1},
        "output_dir": output_dir,
        "run_name": run_name,
    }, source="quickstart")


def quickstart(output_dir: str = "runs", steps: int = 40, train_rows: int = 400, eval_rows: int = 50,
               run_name: str | None = None, progress: Progress | None = None) -> dict:
    """Train, then evaluate base vs tuned; returns the numbers and where the run is."""
    progress = progress or NullProgress()
    started = time.perf_counter()
    name = run_name or f"quickstart-{time.strftime('%Y%m%d-%H%M%S')}"
    data_dir = graft_home() / "quickstart" / f"{train_rows}-{eval_rows}"
    data_dir.mkdir(parents=True, exist_ok=True)
    # Different seeds: no eval sentence is a training sentence.
    (data_dir / "train.json").write_text(json.dumps(make_rows(train_rows, seed=1)))
    (data_dir / "eval.json").write_text(json.dumps(make_rows(eval_rows, seed=2)))

    cfg = quickstart_config(output_dir, data_dir, steps, name)
    result = train(cfg, progress)
    progress.log("scoring base and tuned model on held-out sentences")
    report = evaluate(result.run_dir, compare_base=True, limit=None, progress=progress,
                      loaded=load_for_inference(result.run_dir))
    report["run_dir"] = str(result.run_dir)
    report["train"] = {k: result.summary.get(k) for k in ("steps", "tokens", "train_time_s", "tokens_per_s",
                                                           "first_loss", "final_loss", "trainable_percent")}
    report["total_time_s"] = round(time.perf_counter() - started, 1)
    (result.run_dir / "quickstart.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
