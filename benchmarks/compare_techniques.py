"""LoRA vs IA3 vs prompt tuning on the bundled SmolLM2: same data, same steps, same batch, as JSON.

Each technique trains in its own process (so peak memory is its own) on the quickstart task
(order sentences -> JSON), then is scored on the same held-out sentences: eval loss, perplexity
and exact match of greedy answers. Learning rates differ per technique, as each method's usual range
does; they are printed with the results.

    python benchmarks/compare_techniques.py                 # ~15 min on 2 CPU cores
    python benchmarks/compare_techniques.py --steps 10 --techniques lora,ia3
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time

from _child import ChildFailed, emit, in_child

SETUPS = {
    "lora": ({"r": 16, "alpha": 32, "target_modules": "all-linear"}, 1e-3),
    "ia3": ({}, 1e-2),
    "prompt-tuning": ({"virtual_tokens": 20}, 3e-2),
}


def run_one(name: str, steps: int, out_dir: str) -> dict:
    from graft.config import RunConfig
    from graft.evaluate.evaluate import evaluate
    from graft.inference import load_for_inference
    from graft.paths import graft_home
    from graft.quickstart.run import quickstart_config
    from graft.quickstart.task import make_rows
    from graft.train.recipe import train

    data_dir = graft_home() / "quickstart" / "400-50"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "train.json").write_text(json.dumps(make_rows(400, seed=1)))
    (data_dir / "eval.json").write_text(json.dumps(make_rows(50, seed=2)))
    options, lr = SETUPS[name]
    raw = quickstart_config(out_dir, data_dir, steps, name).model_dump(mode="json")
    raw["technique"] = {"name": name, **options}
    raw["train"]["lr"] = lr
    raw["checkpoint"] = {"every": None}
    result = train(RunConfig.from_dict(raw))
    s = result.summary
    t0 = time.perf_counter()
    scores = evaluate(result.run_dir, limit=None, compare_base=(name == "lora"), loaded=load_for_inference(result.run_dir))
    return {
        "technique": name, "options": options, "lr": lr, "steps": s["steps"],
        "trainable_params": s["trainable_params"], "trainable_percent": s["trainable_percent"],
        "train_time_s": s["train_time_s"], "s_per_step": round(s["train_time_s"] / s["steps"], 2),
        "tokens_per_s": s["tokens_per_s"], "first_loss": round(s["first_loss"], 4), "final_loss": round(s["final_loss"], 4),
        "eval_loss": round(scores["tuned"]["loss"], 4), "eval_perplexity": round(scores["tuned"]["perplexity"], 3),
        "exact_match": scores["tuned"]["exact_match"], "eval_time_s": round(time.perf_counter() - t0, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        **({"base_exact_match": scores["base"]["exact_match"], "base_eval_loss": round(scores["base"]["loss"], 4)}
           if "base" in scores else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--techniques", default=",".join(SETUPS))
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run a single technique in this process
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run_one(args.one, args.steps, tmp)))
        return
    rows = []
    for name in [n.strip() for n in args.techniques.split(",") if n.strip()]:
        if name not in SETUPS:
            sys.exit(f"unknown technique {name!r}; this benchmark knows {', '.join(SETUPS)}")
        try:
            rows.append(in_child(__file__, "--one", name, "--steps", str(args.steps)))
        except ChildFailed as e:
            sys.exit(f"{name} failed:\n{e}")
    emit({"benchmark": "compare_techniques", "model": "smollm2-135m-instruct", "task": "quickstart order extraction",
          "train_rows": 400, "eval_rows": 50, "batch_size": 8, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
