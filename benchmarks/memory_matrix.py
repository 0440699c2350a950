"""Memory estimate vs measured peak, over a matrix of runs on the bundled SmolLM2, as JSON.

Cells: technique x gradient checkpointing x optimizer x micro-batch size. Each cell trains a few
steps in its own process (a process's peak is its own) on Alpaca rows, with the estimate's fit
check off; graft records both figures in summary.json["memory"]. Prints every cell and the median
absolute relative error.

    python benchmarks/memory_matrix.py                       # 36 cells, ~20 min on 2 CPU cores
    python benchmarks/memory_matrix.py --techniques lora --optimizers adamw --batch-sizes 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
from pathlib import Path

from _child import ChildFailed, emit, in_child

ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_5000" / "alpaca_5000.json"
OPTIONS = {"lora": {"r": 8, "alpha": 16}, "ia3": {}, "full": {}}


def run_cell(technique: str, ckpt: bool, optimizer: str, batch: int, steps: int, max_length: int) -> dict:
    from graft.config import RunConfig
    from graft.train.recipe import train

    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig.from_dict({
            "model": {"name": "smollm2-135m-instruct"},
            "data": {"path": str(ALPACA), "skip_bad_rows": True, "limit": 200, "max_length": max_length, "eval_size": 0},
            "technique": {"name": technique, **OPTIONS[technique]},
            "train": {"max_steps": steps, "batch_size": batch, "optimizer": optimizer, "gradient_checkpointing": ckpt,
                      "lr": 1e-4, "seed": 0, "log_every": 1},
            "memory": {"check": False},
            "output_dir": tmp, "run_name": "cell",
        })
        s = train(cfg).summary
    mem = s["memory"]
    est, got = mem["estimated_bytes"], mem["measured_peak_bytes"]
    return {"technique": technique, "gradient_checkpointing": ckpt, "optimizer": optimizer, "batch_size": batch,
            "estimated_gib": round(est / 2**30, 3), "measured_gib": round(got / 2**30, 3),
            "error": round((est - got) / got, 4), "tokens_per_s": s["tokens_per_s"], "breakdown": {t["name"]: t["bytes"] for t in mem["estimate"]["terms"]}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--techniques", default="lora,ia3,full")
    ap.add_argument("--optimizers", default="adamw,adafactor,mezo")
    ap.add_argument("--batch-sizes", default="2,4")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--cell", help=argparse.SUPPRESS)  # internal: one cell as JSON args
    args = ap.parse_args()
    if args.cell:
        print(json.dumps(run_cell(**json.loads(args.cell))))
        return
    cells = itertools.product(args.techniques.split(","), (False, True), args.optimizers.split(","),
                              [int(b) for b in args.batch_sizes.split(",")])
    rows = []
    for technique, ckpt, optimizer, batch in cells:
        cell = dict(technique=technique, ckpt=ckpt, optimizer=optimizer, batch=batch, steps=args.steps,
                    max_length=args.max_length)
        try:
            rows.append(in_child(__file__, "--cell", json.dumps(cell)))
        except ChildFailed as e:
            rows.append({**cell, "failed": str(e).splitlines()[-1]})
    errors = [abs(r["error"]) for r in rows if "error" in r]
    emit({"benchmark": "memory_matrix", "model": "smollm2-135m-instruct", "max_length": args.max_length,
              "steps": args.steps, "cells": len(rows), "failed": sum("failed" in r for r in rows),
              "median_abs_error": round(statistics.median(errors), 4) if errors else None,
          "max_abs_error": round(max(errors), 4) if errors else None, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
