"""LoRA training speed of graft on this machine, as JSON.

Trains the bundled SmolLM2 with graft's recipe on real Alpaca rows and reports tokens/s (real
tokens: batches carry no padding) and the matmul work those tokens imply, as a fraction of the fp32
matmul ceiling measured on this machine (2048^3 matmuls) and of the 154 GFLOP/s reference that
shared/FACTS.md gives for the project's 2-core AVX2 machines.

    python benchmarks/train_speed.py --steps 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

ALPACA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca_5000" / "alpaca_5000.json"


def matmul_ceiling(n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def train_flops(cfg: dict, tokens: int, targets: int, mean_len: float) -> float:
    """Frozen-base LoRA: forward + input-gradient backward = 2 x forward matmul work (adapter work ignored)."""
    d, L, ff, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = d * cfg["num_key_value_heads"] // cfg["num_attention_heads"]
    per_layer = 2 * (d * d * 2 + d * kv * 2 + 3 * d * ff)  # q,o + k,v + gate,up,down
    attention = 2 * 2 * d * mean_len / 2  # scores + weighted sum over the causal half of the context
    forward = tokens * L * (per_layer + attention) + targets * 2 * d * V
    return 2 * forward


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    args = ap.parse_args()

    from graft.config import RunConfig
    from graft.train.recipe import train

    with tempfile.TemporaryDirectory() as out:
        cfg = RunConfig.from_dict({
            "data": {"path": str(ALPACA), "skip_bad_rows": True, "max_length": args.max_length, "eval_size": 0},
            "train": {"max_steps": args.steps, "batch_size": args.batch_size, "lr": 1e-4},
            "technique": {"name": "lora", "r": 8, "alpha": 16, "target_modules": "all-linear"},
            "output_dir": out, "run_name": "speed",
        })
        result = train(cfg)
        rows = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        model_cfg = json.loads((Path(result.summary["model"]["folder"]) / "config.json").read_text())
    s = result.summary
    timed = rows[2:]  # the first steps include allocator warm-up
    seconds = timed[-1]["elapsed_s"] - rows[1]["elapsed_s"]
    tokens = timed[-1]["tokens"] - rows[1]["tokens"]
    targets_share = s["target_tokens"] / s["tokens"]
    mean_len = s["data"]["train_tokens"] / s["data"]["train_examples"]
    flops = train_flops(model_cfg, tokens, int(tokens * targets_share), mean_len)
    ceiling = matmul_ceiling()
    print(json.dumps({
        "steps_timed": len(timed),
        "tokens_per_s": round(tokens / seconds, 1),
        "target_share": round(targets_share, 3),
        "gflops_per_s": round(flops / seconds / 1e9, 1),
        "fp32_ceiling_gflops_here": round(ceiling, 1),
        "fraction_of_ceiling_here": round(flops / seconds / 1e9 / ceiling, 3),
        "fraction_of_facts_ceiling_154": round(flops / seconds / 1e9 / 154.0, 3),
        "final_loss": s["final_loss"],
        "threads": s["threads"],
    }, indent=2))


if __name__ == "__main__":
    main()
