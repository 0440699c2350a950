"""graft against the baseline users would write (benchmarks/baseline_trainer.py), same work.

Both sides train LoRA (r=8, alpha=16, all linear layers, no dropout) on the bundled SmolLM2 over the
same Alpaca rows, once, batch 8 (Trainer's default), lr 2e-4, linear decay, AdamW, grad-norm clip 1.0: the same
examples, the same number of optimizer steps, the same real tokens. Rounds alternate baseline and
graft, each side in its own process (its peak memory is its own). Afterwards one shared function
scores both adapters on the same held-out rows, so the losses compare like for like.

Printed (JSON): per side the median tokens/s (real tokens: padding never counts), peak RSS
(whole process, loading included), final train loss and held-out loss; then the ratios.

    python benchmarks/speed_vs_baseline.py --rounds 2 --out benchmarks/results/speed_vs_baseline.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ALPACA = HERE.parents[1] / "shared" / "data" / "alpaca_5000" / "alpaca_5000.json"
EVAL_ROWS = slice(4000, 4064)


def graft_side(args) -> None:
    """graft's recipe on the same rows and hyper-parameters (run in a child process)."""
    from graft.config import RunConfig
    from graft.memory.measure import status_bytes
    from graft.train.recipe import train

    with tempfile.TemporaryDirectory() as out:
        cfg = RunConfig.from_dict({
            "data": {"path": str(args.data), "limit": args.rows, "eval_size": 0, "max_length": args.max_length},
            "train": {"epochs": 1, "batch_size": args.batch_size, "lr": args.lr, "scheduler": "linear",
                      "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0},
            "technique": {"name": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": "all-linear"},
            "output_dir": out, "run_name": "graft",
        })
        s = train(cfg).summary
        shutil.copytree(Path(out) / "graft" / "adapter", args.save, dirs_exist_ok=True)
    print(json.dumps({"train_s": s["train_time_s"], "steps": s["steps"], "real_tokens": s["tokens"],
                      "final_loss": s["final_loss"], "peak_rss_bytes": status_bytes("VmHWM")}))


def run_side(side: str, args, save: Path) -> dict:
    common = ["--data", str(args.data), "--rows", str(args.rows), "--batch-size", str(args.batch_size),
              "--max-length", str(args.max_length), "--lr", str(args.lr), "--save", str(save)]
    if side == "baseline":
        # the baseline script reports its own figures; the wrapper adds its process's peak RSS
        cmd = [sys.executable, "-c", _PEAK_WRAPPER, str(HERE / "baseline_trainer.py"), "--model-dir", str(args.model_dir),
               *common]
    else:
        cmd = [sys.executable, __file__, "--side", "graft", *common]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{p.stderr[-3000:]}")
    row = json.loads(p.stdout.strip().splitlines()[-1])
    row["tokens_per_s"] = row["real_tokens"] / row["train_s"]
    print(json.dumps({"side": side, **{k: v for k, v in row.items() if k != "losses"}}), file=sys.stderr)
    return row


# Runs a script in this process and prints its JSON line with the process's peak RSS added.
_PEAK_WRAPPER = """
import io, json, runpy, sys, contextlib
script = sys.argv[1]
sys.argv = sys.argv[1:]
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    runpy.run_path(script, run_name="__main__")
row = json.loads(buf.getvalue().strip().splitlines()[-1])
from graft.memory.measure import status_bytes
row["peak_rss_bytes"] = status_bytes("VmHWM")
print(json.dumps(row))
"""


def heldout_loss(model_dir: Path, adapter: Path, rows: list[dict], max_length: int) -> float:
    """Token-mean response loss of base + adapter over `rows`, one example at a time (no padding)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(HERE))
    from baseline_trainer import tokenize

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            enc = tokenize(row, tokenizer, max_length)
            labels = torch.tensor([enc["labels"]])
            out = model(input_ids=torch.tensor([enc["input_ids"]]), labels=labels)
            n = int((labels[0, 1:] != -100).sum())
            total += out.loss.item() * n
            count += n
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", choices=["graft"], help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=ALPACA)
    ap.add_argument("--rows", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--save", type=Path)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.side == "graft":
        return graft_side(args)

    from graft.models import resolve
    from graft.models.load import ensure_folder

    args.model_dir = ensure_folder(resolve("smollm2-135m-instruct"))  # the bundled model as safetensors
    results: dict[str, list[dict]] = {"baseline": [], "graft": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side in ("baseline", "graft"):
                results[side].append(run_side(side, args, Path(tmp) / f"{side}-{r}"))
        rows = json.loads(args.data.read_text())[EVAL_ROWS]
        heldout = {side: heldout_loss(args.model_dir, Path(tmp) / f"{side}-{args.rounds - 1}", rows, args.max_length)
                   for side in results}

    def side_report(side: str) -> dict:
        runs = results[side]
        return {
            "tokens_per_s": round(statistics.median(x["tokens_per_s"] for x in runs), 1),
            "tokens_per_s_rounds": [round(x["tokens_per_s"], 1) for x in runs],
            "train_s": round(statistics.median(x["train_s"] for x in runs), 1),
            "peak_rss_gib": round(max(x["peak_rss_bytes"] for x in runs) / 2**30, 3),
            "steps": runs[0]["steps"], "real_tokens": runs[0]["real_tokens"],
            "final_train_loss": round(runs[-1]["final_loss"], 4),
            "heldout_loss": round(heldout[side], 4),
        }

    base, ours = side_report("baseline"), side_report("graft")
    import torch

    from _child import emit

    emit({
        "setup": {"model": "SmolLM2-135M-Instruct (bundled)", "data": f"alpaca_5000 rows 0-{args.rows - 1}",
                  "heldout": f"rows {EVAL_ROWS.start}-{EVAL_ROWS.stop - 1}", "lora": "r=8 alpha=16 all-linear",
                  "batch_size": args.batch_size, "max_length": args.max_length, "lr": args.lr, "epochs": 1,
                  "rounds": args.rounds, "threads": torch.get_num_threads(),
                  "date": time.strftime("%Y-%m-%d")},
        "baseline": base, "graft": ours,
        "ratios": {"tokens_per_s": round(ours["tokens_per_s"] / base["tokens_per_s"], 2),
                   "peak_memory": round(ours["peak_rss_gib"] / base["peak_rss_gib"], 2),
                   "heldout_loss_rel_diff": round(ours["heldout_loss"] / base["heldout_loss"] - 1, 4)},
    }, args.out)


if __name__ == "__main__":
    main()
