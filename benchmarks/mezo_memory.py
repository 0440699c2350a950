"""MeZO vs backprop on the bundled SmolLM2: peak memory next to plain inference for the same
micro-batch, and MeZO's held-out loss before and after training on the quickstart task, as JSON.

    python benchmarks/mezo_memory.py                 # ~20 min on 2 CPU cores
    python benchmarks/mezo_memory.py --steps 50
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile

from _child import ChildFailed, emit, in_child

ALPACA_ROWS = 200


def _config(tmp: str, technique: str, optimizer: str, steps: int, lr: float, data: str, eval_path: str | None = None):
    from graft.config import RunConfig

    return RunConfig.from_dict({
        "model": {"name": "smollm2-135m-instruct"},
        "data": {"path": data, "max_length": 256, "eval_size": 0 if eval_path is None else None, "eval_path": eval_path},
        "technique": {"name": technique, **({"r": 8, "alpha": 16} if technique == "lora" else {})},
        "train": {"max_steps": steps, "batch_size": 4, "optimizer": optimizer, "lr": lr, "seed": 0,
                  "scheduler": "constant", "warmup_ratio": 0.0, "mezo_eps": 1e-3},
        "memory": {"check": False}, "output_dir": tmp, "run_name": "run",
    })


def _task_data(tmp: str) -> tuple[str, str]:
    from pathlib import Path

    from graft.quickstart.task import make_rows

    train, held = Path(tmp) / "train.json", Path(tmp) / "eval.json"
    train.write_text(json.dumps(make_rows(400, seed=1)))
    held.write_text(json.dumps(make_rows(50, seed=2)))
    return str(train), str(held)


def inference_peak(tmp: str) -> dict:
    """Forward passes only, no gradients, over the same micro-batches a training run sees."""
    import torch

    from graft.data.batching import flatten, group
    from graft.data.prepare import prepare_data
    from graft.memory.measure import PeakMemory
    from graft.models import load_model

    train_file, _ = _task_data(tmp)
    cfg = _config(tmp, "lora", "adamw", 3, 1e-4, train_file)
    model, tokenizer = load_model("smollm2-135m-instruct", task="causal-lm")
    data = prepare_data(cfg.data, tokenizer, 0)
    items = data.train.items
    lengths = [len(t.input_ids) for t in items]
    batches = group(len(items), lengths, 4, 256, False, 0, 0)[:3]
    model.eval()
    with torch.no_grad(), PeakMemory() as peak:
        for g in batches:
            b = flatten([items[i] for i in g])
            model(input_ids=b.input_ids, position_ids=b.position_ids, use_cache=False, logits_to_keep=b.target_positions)
    return {"mode": "inference (forward only)", "peak_gib": round(peak.peak_bytes / 2**30, 3)}


def train_peak(tmp: str, technique: str, optimizer: str, steps: int, lr: float) -> dict:
    from graft.train.recipe import train

    train_file, held = _task_data(tmp)
    s = train(_config(tmp, technique, optimizer, steps, lr, train_file, held)).summary
    out = {"mode": f"{technique} + {optimizer}", "steps": steps, "lr": lr,
           "peak_gib": round(s["memory"]["measured_peak_bytes"] / 2**30, 3),
           "estimated_gib": round(s["memory"]["estimated_bytes"] / 2**30, 3),
           "s_per_step": round(s["train_time_s"] / s["steps"], 2), "first_loss": s["first_loss"],
           "final_loss": s["final_loss"], "eval_loss": s.get("eval_loss")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100, help="MeZO steps for the loss curve")
    ap.add_argument("--lr", type=float, default=1e-4, help="MeZO learning rate (LoRA)")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        job = json.loads(args.one)
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(inference_peak(tmp) if job["kind"] == "inference" else
                             train_peak(tmp, job["technique"], job["optimizer"], job["steps"], job["lr"])))
        return
    jobs = [{"kind": "inference"},
            {"kind": "train", "technique": "lora", "optimizer": "adamw", "steps": 3, "lr": 1e-4},
            {"kind": "train", "technique": "full", "optimizer": "adamw", "steps": 3, "lr": 1e-5},
            {"kind": "train", "technique": "full", "optimizer": "mezo", "steps": 3, "lr": 1e-6},
            {"kind": "train", "technique": "lora", "optimizer": "mezo", "steps": 0, "lr": args.lr},
            {"kind": "train", "technique": "lora", "optimizer": "mezo", "steps": args.steps, "lr": args.lr}]
    rows = []
    for job in jobs:
        if job.get("steps") == 0:  # the held-out loss before any training: one step at lr 0
            job = {**job, "steps": 1, "lr": 1e-12}
        try:
            rows.append(in_child(__file__, "--one", json.dumps(job)))
        except ChildFailed as e:
            sys.exit(f"{job} failed:\n{e}")
    emit({"benchmark": "mezo_memory", "model": "smollm2-135m-instruct", "micro_batch": "4 x <=256 tokens",
          "task": "quickstart order extraction (400 train, 50 held-out)", "rows": rows}, args.out)


if __name__ == "__main__":
    main()
