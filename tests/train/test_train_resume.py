"""Resume after a real SIGKILL gives the same run as never stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from graft.train.recipe import train
from graft.train.run_folder import RunFolder

REPO = Path(__file__).resolve().parents[2]

# The child trains run B; once step 9 is logged it stops still (so the kill lands at a known point,
# after checkpoint 8 and after a metrics row the resume must drop) and waits to be SIGKILLed.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from graft.config import RunConfig
    from graft.progress import NullProgress
    from graft.train.recipe import train

    class StallAfter(NullProgress):
        def __init__(self, step, marker):
            self.step, self.marker, self.done = step, Path(marker), 0
        def advance(self, task, n=1, **fields):
            if task == "train":
                self.done += n
                if self.done >= self.step:
                    self.marker.write_text(str(self.done))
                    time.sleep(600)

    cfg = RunConfig.load(sys.argv[1])
    train(cfg, progress=StallAfter(int(sys.argv[2]), sys.argv[3]))
    print("child finished without being killed", flush=True)
    """
)


def _steps_and_losses(run_dir: Path) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for r in RunFolder(run_dir).read_metrics():
        if r["type"] == "train":
            out.setdefault(r["step"], []).append(r["loss"])
    return out


def _wait_for(proc: subprocess.Popen, paths: list[Path], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.exists() for p in paths):
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"child exited with {proc.returncode} before {paths} appeared\n{out}\n{err[-4000:]}")
        time.sleep(0.05)
    proc.kill()
    out, err = proc.communicate()
    pytest.fail(f"timed out after {timeout}s waiting for {[str(p) for p in paths]}\n{out}\n{err[-4000:]}")


def test_sigkill_then_resume_matches_uninterrupted_run(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    overrides = {"train.max_steps": 12, "checkpoint.every": 4, "checkpoint.keep_last": 2}
    cfg_a = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "a", **overrides)
    cfg_b = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "b", **overrides)

    # A: uninterrupted
    a = train(cfg_a)
    assert a.summary["steps"] == 12

    # B: a separate process, killed with SIGKILL after step 9 (checkpoint 8 is the latest)
    cfg_path, marker = tmp_path / "b.yaml", tmp_path / "stalled"
    cfg_b.save(cfg_path)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(cfg_path), "9", str(marker)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_b = tmp_path / "b" / "run"
    try:
        _wait_for(proc, [run_b / "checkpoints" / "step-000008" / "state.json", marker], timeout=120)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    killed = RunFolder(run_b)
    assert json.loads(killed.summary.read_text())["status"] == "running"  # it never got to say how it ended
    assert [s for s, _ in killed.checkpoints()] == [4, 8]
    assert sorted(_steps_and_losses(run_b)) == list(range(1, 10)), "step 9 was logged before the kill"
    assert not killed.adapter.exists()

    # resume B to the end
    b = train(cfg_b, resume_dir=run_b)
    assert b.run_dir == run_b
    assert (b.summary["status"], b.summary["steps"]) == ("completed", 12)
    assert "resumed from step-000008 (step 8 of 12)" in killed.log_file.read_text()

    steps_a, steps_b = _steps_and_losses(a.run_dir), _steps_and_losses(run_b)
    assert sorted(steps_b) == list(range(1, 13))
    dupes = {s: v for s, v in steps_b.items() if len(v) != 1}
    assert not dupes, f"steps logged more than once: {dupes}"
    for step in range(1, 13):
        la, lb = steps_a[step][0], steps_b[step][0]
        assert lb == pytest.approx(la, rel=1e-4), f"step {step}: uninterrupted {la} vs resumed {lb}"

    # the final adapters agree too, and so does the final evaluation
    wa = load_file(a.run_dir / "adapter" / "adapter_model.safetensors")
    wb = load_file(run_b / "adapter" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and len(wa) > 0
    for k in wa:
        assert torch.allclose(wa[k], wb[k], rtol=1e-4, atol=1e-6), k
    assert b.summary["eval_loss"] == pytest.approx(a.summary["eval_loss"], rel=1e-4)
    assert b.summary["tokens"] == a.summary["tokens"]
