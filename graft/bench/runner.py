"""Run a matrix: each cell in its own process, one after another, each result stored as it lands.

A cell that raises, is killed (out of memory: SIGKILL) or runs past its time limit is recorded as
failed with the reason and the tail of its stderr; the rest of the matrix goes on. Finished cells
(completed or failed) are skipped on a re-run unless asked.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

from graft.bench.cell import PREFIX
from graft.bench.matrix import Cell, Matrix
from graft.bench.record import finite
from graft.bench.store import Store
from graft.progress import NullProgress, Progress


def run_matrix(matrix: Matrix, store: Store, runs_dir: str | Path, progress: Progress | None = None,
               rerun: bool = False, retry_failed: bool = False, cell_timeout: float | None = None) -> list[dict]:
    """Run every cell not yet finished; returns the records of the whole matrix, in order."""
    progress = progress or NullProgress()
    cells = matrix.expand()
    varying = matrix.varying(cells)
    store.save_benchmark(matrix.name, matrix.to_dict(), [c.id for c in cells])
    todo = [c for c in cells if _needs_run(store.cell(matrix.name, c.id), rerun, retry_failed)]
    if len(todo) < len(cells):
        progress.log(f"{len(cells) - len(todo)} of {len(cells)} cells already finished (--rerun runs them again)")
    progress.start("cells", total=len(todo))
    root = Path(runs_dir) / matrix.name
    for n, cell in enumerate(todo, 1):
        label = cell.label(varying)
        progress.log(f"cell {n}/{len(todo)}: {label}")
        record = run_cell(matrix.name, cell, label, root, progress, cell_timeout)
        store.save_cell(record)
        outcome = "ok" if record["status"] == "completed" else f"FAILED: {record['error'].splitlines()[0]}"
        progress.advance("cells", 1, cell=f"{label} {outcome}")
    progress.finish("cells")
    return store.records(matrix.name)


def _needs_run(record: dict | None, rerun: bool, retry_failed: bool) -> bool:
    if record is None or rerun:
        return True
    return record["status"] == "failed" and retry_failed


def run_cell(benchmark: str, cell: Cell, label: str, root: Path, progress: Progress,
             timeout: float | None = None) -> dict:
    """Train one cell in a child process and build its record from the run folder it leaves."""
    root.mkdir(parents=True, exist_ok=True)
    name = f"{cell.index:03d}-{cell.id}"
    run_dir = root / name
    if run_dir.exists():  # an earlier attempt at this very cell
        shutil.rmtree(run_dir)
    config = cell.config.model_copy(update={"output_dir": str(root), "run_name": name})
    config_file = root / f"{name}.json"
    config_file.write_text(json.dumps(config.model_dump(mode="json"), indent=2))
    stderr_file = root / f"{name}.stderr.log"
    started, t0 = datetime.now(), time.perf_counter()
    with open(stderr_file, "w") as err:
        child = subprocess.Popen([sys.executable, "-m", "graft.bench.cell", str(config_file)], stdout=subprocess.PIPE,
                                 stderr=err, text=True, start_new_session=True)
        timer, fired = _kill_after(child, timeout)
        try:
            for line in child.stdout:
                _relay(line, progress)
            code = child.wait()
        except BaseException:  # Ctrl-C here does not reach the child (its own session): stop it too
            _kill(child)
            child.wait()
            raise
        finally:
            timer.cancel()
    wall = time.perf_counter() - t0
    error = None if code == 0 else _failure(code, stderr_file, fired.is_set(), timeout)
    return build_record(benchmark, cell, label, run_dir, error, wall, started)


def _kill_after(child: subprocess.Popen, timeout: float | None) -> tuple[threading.Timer, threading.Event]:
    """A timer that kills the child's whole process group, and the event that says it did."""
    fired = threading.Event()

    def kill() -> None:
        fired.set()
        _kill(child)

    timer = threading.Timer(timeout or 0, kill)
    timer.daemon = True
    if timeout:
        timer.start()
    return timer, fired


def _kill(child: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group."""
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _relay(line: str, progress: Progress) -> None:
    """Forward the child's training progress (not its eval/convert bars) to the parent's."""
    if not line.startswith(PREFIX):
        return
    try:
        event = json.loads(line[len(PREFIX):])
    except json.JSONDecodeError:
        return
    if event.get("task") != "train":
        return
    if event["event"] == "start":
        progress.start("train", total=event.get("total"), completed=event.get("completed") or 0)
    elif event["event"] == "advance":
        fields = {k: v for k, v in event.items() if k in ("loss", "tokens_per_s")}
        progress.advance("train", event.get("n", 1), **fields)


def _failure(code: int, stderr_file: Path, timed_out: bool, timeout: float | None) -> str:
    tail = stderr_file.read_text(errors="replace").strip().splitlines()[-15:]
    if timed_out:
        head = f"timed out after {timeout:g} s"
    elif code == -signal.SIGKILL:
        head = "killed by SIGKILL (out of memory?)"
    elif code < 0:
        head = f"killed by signal {signal.Signals(-code).name}"
    else:
        head = f"exit {code}"
    last = tail[-1] if tail else ""
    return f"{head}: {last}" + ("\n" + "\n".join(tail) if len(tail) > 1 else "")


def build_record(benchmark: str, cell: Cell, label: str, run_dir: Path, error: str | None,
                 wall_s: float, started: datetime) -> dict:
    summary = _read_json(run_dir / "summary.json") or {}
    rows = _read_jsonl(run_dir / "metrics.jsonl")
    trace = [{k: r.get(k) for k in ("step", "loss", "grad_norm", "lr", "tokens", "elapsed_s")}
             for r in rows if r.get("type") == "train"]
    evals = [{k: v for k, v in r.items() if k != "type"} for r in rows if r.get("type") == "eval"]
    status = "completed" if error is None and summary.get("status") == "completed" else "failed"
    if status == "failed" and error is None:
        error = summary.get("error") or f"the run ended '{summary.get('status', 'without a summary')}'"
    return finite({
        "benchmark": benchmark, "cell": cell.id, "index": cell.index, "label": label, "params": cell.params,
        "status": status, "error": error, "config": cell.config.model_dump(mode="json"),
        "metrics": _metrics(summary, trace, wall_s) if summary else None,
        "trace": trace, "evals": evals, "run_dir": str(run_dir),
        "started": started.isoformat(timespec="seconds"), "finished": datetime.now().isoformat(timespec="seconds"),
    })


def _metrics(summary: dict, trace: list[dict], wall_s: float) -> dict:
    memory = summary.get("memory") or {}
    train_s = summary.get("train_time_s")
    norms = [t["grad_norm"] for t in trace if isinstance(t.get("grad_norm"), (int, float)) and math.isfinite(t["grad_norm"])]
    return {
        "wall_s": round(wall_s, 2),
        "train_time_s": train_s,
        "steps": summary.get("steps"),
        "steps_per_s": round(summary["steps"] / train_s, 4) if train_s and summary.get("steps") else None,
        "tokens": summary.get("tokens"),
        "tokens_per_s": summary.get("tokens_per_s"),
        "peak_memory_bytes": memory.get("measured_peak_bytes"),
        "avg_memory_bytes": (memory.get("measured") or {}).get("avg_bytes"),
        "estimated_memory_bytes": memory.get("estimated_bytes"),
        "train_loss": summary.get("loss_last10_mean"),
        "final_loss": summary.get("final_loss"),
        "eval_loss": summary.get("eval_loss"),
        "eval_ppl": summary.get("eval_ppl"),
        "trainable_params": summary.get("trainable_params"),
        "total_params": summary.get("total_params"),
        "trainable_percent": summary.get("trainable_percent"),
        "grad_norm_mean": sum(norms) / len(norms) if norms else None,
    }


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _read_jsonl(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            pass
    return out
