"""One benchmark cell's result: what the runner stores and the exporters and charts read.

A record is a plain dict (JSON-ready), so the store, the exporters and the charts share no classes:

    {
      "benchmark": "smollm2-techniques",       # the matrix's name
      "cell": "a1b2c3d4e5",                     # stable id: hash of the cell's full config
      "index": 3,                               # position in the expanded matrix
      "label": "lora r=16 adamw",               # the swept values, short
      "params": {"technique.name": "lora", "technique.r": 16, "train.optimizer": "adamw"},  # swept axes only
      "status": "completed" | "failed" | "pending" | "pruned",   # pruned: a tuning trial stopped early
      "error": None | "exit -9 (killed: out of memory?): ...last lines of stderr",
      "config": {...},                          # the exact RunConfig of the cell (model_dump)
      "metrics": {                              # None where the cell did not get that far
        "wall_s", "train_time_s", "steps", "steps_per_s", "tokens", "tokens_per_s",
        "peak_memory_bytes", "avg_memory_bytes", "estimated_memory_bytes",
        "train_loss",                           # mean of the last 10 steps' loss
        "final_loss", "eval_loss", "eval_ppl",
        "trainable_params", "total_params", "trainable_percent",
        "grad_norm_mean",
      },
      "trace": [{"step", "loss", "grad_norm", "lr", "tokens", "elapsed_s"}, ...],   # every logged step
      "evals": [{"step", "eval_loss", "eval_ppl"}, ...],
      "run_dir": "/path/to/the/cell's/run/folder",
      "started": "2026-11-24T10:00:00", "finished": "...",
      # tuning studies only (graft tune): the trial, and the eval loss Optuna ranked it by (value, at step)
      "trial": {"number", "baseline", "state", "value", "step"},
    }
"""

from __future__ import annotations

import math

from graft.memory.devices import GiB

METRICS = (
    "wall_s", "train_time_s", "steps", "steps_per_s", "tokens", "tokens_per_s",
    "peak_memory_bytes", "avg_memory_bytes", "estimated_memory_bytes",
    "train_loss", "final_loss", "eval_loss", "eval_ppl",
    "trainable_params", "total_params", "trainable_percent", "grad_norm_mean",
)
STATUSES = ("pending", "completed", "failed", "pruned")


def finite(value):
    """NaN and infinity (a diverged run's losses) as None, all the way down: strict JSON, which the API
    sends, has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def _gib(v: float) -> str:
    return f"{v / GiB:.2f}"


# How every table (terminal, Markdown, dashboard) shows a metric: (title, metric key, formatter).
COLUMNS = (
    ("tokens/s", "tokens_per_s", lambda v: f"{v:,.0f}"), ("steps/s", "steps_per_s", lambda v: f"{v:.3f}"),
    ("peak GiB", "peak_memory_bytes", _gib), ("avg GiB", "avg_memory_bytes", _gib),
    ("est. GiB", "estimated_memory_bytes", _gib),
    ("train loss", "train_loss", lambda v: f"{v:.3f}"), ("eval loss", "eval_loss", lambda v: f"{v:.3f}"),
    ("eval ppl", "eval_ppl", lambda v: f"{v:.2f}"), ("trainable", "trainable_params", lambda v: f"{v:,}"),
    ("trainable %", "trainable_percent", lambda v: f"{v:.3g}"),
)


def flat_row(record: dict) -> dict:
    """One table row: identity, swept params, then every metric (None when missing)."""
    metrics = record.get("metrics") or {}
    row = {"benchmark": record["benchmark"], "cell": record["cell"], "index": record["index"],
           "label": record["label"], "status": record["status"]}
    row.update(record.get("params") or {})
    row.update({k: metrics.get(k) for k in METRICS})
    row["error"] = record.get("error")
    return row
