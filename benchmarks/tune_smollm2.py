"""`graft tune` on the bundled SmolLM2: does a few-trial search beat graft's default LoRA on eval loss?

Runs benchmarks/tune/smollm2-run.yaml (the baseline: default LoRA, 20 steps on 200 Alpaca rows) with
benchmarks/tune/smollm2-space.yaml (lr, rank, alpha, dropout, target modules), then reads the study
back the way the dashboard does (GET /api/benchmarks/tune-NAME) and prints one JSON report: baseline
vs best eval loss, the best params, every trial's outcome, wall time.

    python benchmarks/tune_smollm2.py --set train.threads=1 --out benchmarks/results/tune_smollm2.json  # ~7 min
    python benchmarks/tune_smollm2.py --trials 3 --set train.max_steps=10

(train.threads=1: on a 2-core machine shared with other work, two torch threads per step contend
with it and run many times slower; one thread does not.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _child import emit

HERE = Path(__file__).parent
RUN, SPACE = HERE / "tune" / "smollm2-run.yaml", HERE / "tune" / "smollm2-space.yaml"


class Lines:
    """Progress as plain lines on stderr: one per trial, nothing per step."""

    def start(self, task, total=None, completed=0):
        pass

    def advance(self, task, n=1, **fields):
        pass

    def log(self, message):
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def finish(self, task):
        pass


def dashboard(benchmark: str, db: str | None) -> dict:
    """What the web UI's benchmark page gets for the study."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from graft.server import ServerSettings, errors, runs_api

    app = FastAPI()
    errors.install(app)
    app.state.settings = ServerSettings(**({"db": db} if db else {}))
    app.include_router(runs_api.router)
    client = TestClient(app)
    listed = [b["name"] for b in client.get("/api/benchmarks").json()]
    detail = client.get(f"/api/benchmarks/{benchmark}").json()
    return {"listed": benchmark in listed, "records": len(detail["records"]),
            "statuses": [r["status"] for r in detail["records"]], "charts": list(detail["charts"])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--name", default=f"smollm2-{time.strftime('%Y%m%d-%H%M%S')}", help="study name (a new one by default)")
    ap.add_argument("--set", action="append", default=[], help="base config key=value, e.g. train.max_steps=10")
    ap.add_argument("--db", help="results database (default: graft's)")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()

    from graft.config import RunConfig, parse_set_option
    from graft.tune import Space, tune

    cfg = RunConfig.load(RUN, dict(parse_set_option(item) for item in args.set))
    space = Space.load(SPACE)
    t0 = time.perf_counter()
    result = tune(cfg, space, trials=args.trials, name=args.name, store=args.db, progress=Lines())
    wall = time.perf_counter() - t0
    base, best = result.baseline, result.best
    emit({
        "benchmark": "tune_smollm2", "model": cfg.model.name, "study": result.name,
        "data": {k: v for k, v in cfg.data.model_dump().items() if k in ("path", "limit", "eval_size", "max_length")},
        "train": {k: v for k, v in cfg.train.model_dump().items()
                  if k in ("max_steps", "batch_size", "eval_every", "seed", "threads")},
        "set": args.set,
        "space": space.to_dict(), "trials": args.trials,
        "baseline_eval_loss": base["eval_loss"] if base else None,
        "best_eval_loss": best["eval_loss"] if best else None,
        "improvement_percent": round(100 * (base["eval_loss"] - best["eval_loss"]) / base["eval_loss"], 2)
        if base and best and base["eval_loss"] else None,
        "best_trial": best["number"] if best else None, "best_params": best["params"] if best else None,
        "statuses": {s: sum(t["state"] == s for t in result.trials) for s in ("completed", "pruned", "failed")},
        "trial_rows": [{k: t[k] for k in ("number", "state", "baseline", "eval_loss", "step", "params", "wall_s")}
                       for t in result.trials],
        "wall_s": round(wall, 1),
        "dashboard": dashboard(result.benchmark, args.db),
        "best_config": str(result.best_config), "folder": str(result.folder),
    }, args.out)


if __name__ == "__main__":
    main()
