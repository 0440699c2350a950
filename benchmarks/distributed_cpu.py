"""The bundled SmolLM2 trained by one process and by two (torchrun, gloo) under each strategy, as JSON.

Every run takes the same global batch (one process accumulates what two processes split), so
their losses should agree step by step; the figures are tokens/s (real tokens, over all processes)
and each process's peak memory. On a 2-core CPU two processes share the cores: this shows that
the strategies work and what they cost, not a speed-up (that needs a device a process).

    python benchmarks/distributed_cpu.py --steps 6 [--strategies ddp fsdp zero2 zero3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_5000" / "alpaca_5000.json"
GiB = 1 << 30


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--strategies", nargs="+", default=["ddp", "fsdp", "zero2", "zero3"])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "distributed_cpu.json")
    args = ap.parse_args()

    from graft.config import RunConfig
    from graft.train.launch import Launch, launch
    from graft.train.recipe import train
    from graft.train.run_folder import RunFolder

    results = {}
    with tempfile.TemporaryDirectory() as out:
        def config(name: str, **train_extra) -> RunConfig:
            return RunConfig.from_dict({
                "data": {"path": str(ALPACA), "skip_bad_rows": True, "max_length": 256, "eval_size": 0, "limit": 400},
                "train": {"max_steps": args.steps, "batch_size": args.batch_size, "lr": 2e-4, "log_every": 1,
                          **train_extra},
                "technique": {"name": "lora", "r": 8, "alpha": 16, "target_modules": "all-linear"},
                "output_dir": out, "run_name": name,
            })

        def record(run_dir: Path, wall: float) -> dict:
            s = RunFolder(run_dir).read_summary()
            losses = [r["loss"] for r in RunFolder(run_dir).read_metrics() if r["type"] == "train"]
            mem = s["memory"]
            return {"status": s["status"], "processes": s.get("distributed", {}).get("processes", 1),
                    "tokens_per_s": s["tokens_per_s"], "wall_s": round(wall, 1), "losses": [round(v, 5) for v in losses],
                    "peak_gib_per_process": [round(b / GiB, 2) for b in mem.get("per_rank_peak_bytes", [mem["measured_peak_bytes"]])]}

        t = time.perf_counter()
        single = train(config("single", grad_accum=2))
        results["single"] = record(single.run_dir, time.perf_counter() - t)
        for strategy in args.strategies:
            if strategy.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
                results[strategy] = {"status": "skipped: deepspeed not installed"}
                continue
            cfg = config(strategy).model_copy(update={"distributed": RunConfig.from_dict(
                {"data": {"path": "x"}, "distributed": {"strategy": strategy}}).distributed})
            t = time.perf_counter()
            code, run_dir = launch(cfg, Launch(nproc=2))
            results[strategy] = record(run_dir, time.perf_counter() - t) if code == 0 else {"status": f"exit {code}"}
            print(json.dumps({strategy: results[strategy]}), flush=True)

    ref = results["single"]["losses"]
    for name, r in results.items():
        if "losses" in r:
            r["max_loss_diff_vs_single"] = max(abs(a - b) for a, b in zip(r["losses"], ref))
    text = json.dumps(results, indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
