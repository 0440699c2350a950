"""`graft train --nproc 2` on CPU (gloo): two processes started by torchrun train the same run as one
process with the same global batch, for DDP, FSDP2 and DeepSpeed ZeRO, and resume from their checkpoints."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from graft.train.launch import Launch, launch
from graft.train.recipe import train
from graft.train.run_folder import RunFolder

STEPS = 6
SETTINGS = {"train.max_steps": STEPS, "train.batch_size": 4, "train.lr": 3e-3, "train.eval_every": 3,
            "technique.dropout": 0.0, "checkpoint.every": 2, "checkpoint.keep_last": 5}
needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed")


def _losses(run_dir) -> list[float]:
    return [r["loss"] for r in RunFolder(run_dir).read_metrics() if r["type"] == "train"]


def _adapter(run_dir) -> dict[str, torch.Tensor]:
    return load_file(RunFolder(run_dir).adapter / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tmp_path_factory, helpers):
    tmp = tmp_path_factory.mktemp("distributed")
    data = tmp / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))

    def config(name: str, **overrides):
        return helpers.tiny_config(tiny_model_dir, data, tmp / "runs", **{**SETTINGS, "run_name": name, **overrides})

    # the reference: one process taking both micro-batches of each step (2 x 4 rows)
    single = train(config("single", **{"train.grad_accum": 2}))
    return config, single


def _two_processes(cfg):
    code, run_dir = launch(cfg, Launch(nproc=2))
    assert code == 0, (run_dir / "train.log").read_text() if (run_dir / "train.log").exists() else f"exit {code}"
    return run_dir


def _matches_single(run_dir, single, atol=1e-5):
    summary = RunFolder(run_dir).read_summary()
    assert summary["status"] == "completed"
    assert summary["distributed"]["processes"] == 2 and summary["distributed"]["global_batch"] == 8
    ref, got = _losses(single.run_dir), _losses(run_dir)
    assert len(got) == STEPS
    assert got == pytest.approx(ref, rel=1e-4, abs=atol), f"two processes: {got}\none process: {ref}"
    assert ref[-1] < ref[0] * 0.9  # it trained: the comparison is not between two untouched models
    assert summary["eval_loss"] == pytest.approx(single.summary["eval_loss"], rel=1e-4)
    a, b = _adapter(single.run_dir), _adapter(run_dir)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=atol, rtol=1e-4)
    return summary


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_with_the_same_global_batch(setup, strategy):
    config, single = setup
    run_dir = _two_processes(config(f"two-{strategy}", **{"distributed.strategy": strategy if strategy != "ddp" else "none"}))
    summary = _matches_single(run_dir, single)
    assert summary["distributed"]["strategy"] == strategy
    assert len(summary["memory"]["per_rank_peak_bytes"]) == 2
    # only rank 0 wrote: one log line per message, not two
    log = (run_dir / "train.log").read_text()
    assert log.count("run folder ") == 1
    assert "of this CPU, 1/2 of it" in log  # two processes share this machine's memory: each is held to half


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", pytest.param("zero2", marks=needs_deepspeed),
                                      pytest.param("zero3", marks=needs_deepspeed)])
def test_resume_continues_where_it_stopped(setup, strategy):
    """Resume from the step-2 checkpoint of a finished two-process run: steps 3-6 come out as before."""
    config, _ = setup
    name = f"resume-{strategy}"
    run_dir = _two_processes(config(name, **{"distributed.strategy": strategy}))
    before, adapter = _losses(run_dir), _adapter(run_dir)
    for step, path in RunFolder(run_dir).checkpoints():
        if step > 2:
            shutil.rmtree(path)
    shutil.rmtree(RunFolder(run_dir).adapter)
    code, _ = launch(RunFolder(run_dir).load_config(), Launch(nproc=2), resume_dir=run_dir)
    assert code == 0
    assert "resumed from step-000002" in (run_dir / "train.log").read_text()
    after = _losses(run_dir)
    assert after == pytest.approx(before, rel=1e-5, abs=1e-6)
    for k, v in adapter.items():
        torch.testing.assert_close(_adapter(run_dir)[k], v, atol=1e-6, rtol=1e-5)


@needs_deepspeed
@pytest.mark.parametrize("strategy", ["zero2", "zero3"])
def test_deepspeed_zero_matches_one_process(setup, strategy):
    config, single = setup
    run_dir = _two_processes(config(f"two-{strategy}", **{"distributed.strategy": strategy}))
    assert _matches_single(run_dir, single)["distributed"]["strategy"] == strategy


def test_two_machines_through_the_cli(setup, tmp_path):
    """`graft train --nnodes 2 --node-rank R --master-addr ...` on each 'machine' (two on loopback here)."""
    from graft.train.parallel import free_port

    config, single = setup
    cfg = config("two-nodes")
    path = tmp_path / "run.yaml"
    cfg.save(path)
    port = free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200"}
    nodes = [subprocess.Popen([sys.executable, "-c", "from graft.cli import main; main()", "train", "-c", str(path),
                               "--nnodes", "2", "--node-rank", str(rank), "--master-addr", "127.0.0.1",
                               "--master-port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=300) for node in nodes]
    for node, (stdout, stderr) in zip(nodes, outputs):
        assert node.returncode == 0, stdout + stderr[-3000:]
    assert "in 2 processes (ddp)" in outputs[0][0]
    _matches_single(Path(cfg.output_dir) / "two-nodes", single)


def test_cli_names_what_a_launch_lacks(tmp_path):
    p = subprocess.run([sys.executable, "-c", "from graft.cli import main; main()", "train", "--data", "x.json",
                        "--nnodes", "2"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert p.returncode == 2 and "--nnodes 2 needs --master-addr" in p.stderr, p.stderr


@pytest.mark.parametrize("strategy", ["fsdp", pytest.param("zero2", marks=needs_deepspeed)])
def test_a_sharding_strategy_runs_in_one_process(setup, strategy):
    """No torchrun: the recipe makes its own one-process group (ZeRO or FSDP on a single GPU)."""
    import torch.distributed as dist

    config, single = setup
    result = train(config(f"one-{strategy}", **{"train.grad_accum": 2, "distributed.strategy": strategy}))
    assert not dist.is_initialized() and "LOCAL_RANK" not in os.environ  # closed again when train() returns
    assert result.summary["distributed"] == {"strategy": strategy, "processes": 1, "global_batch": 8}
    assert _losses(result.run_dir) == pytest.approx(_losses(single.run_dir), rel=1e-4, abs=1e-5)


def test_a_bad_row_fails_every_process_with_one_clear_error(tiny_model_dir, tmp_path):
    data = tmp_path / "bad.json"
    data.write_text(json.dumps([{"instruction": "Name a colour.", "output": "Red."}, {"instruction": "No output."}]))
    p = subprocess.run([sys.executable, "-c", "from graft.cli import main; main()", "train", "--model", str(tiny_model_dir),
                        "--data", str(data), "--nproc", "2", "--output-dir", str(tmp_path / "runs"), "--run-name", "bad"],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "200", "PYTHONWARNINGS": "ignore"},
                       timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "bad.json row 2" in p.stderr and "Traceback" not in p.stderr and "ChildFailedError" not in p.stderr, p.stderr
    assert not (tmp_path / "runs" / "bad").exists()  # nothing was written for a run that never started


def test_the_launcher_raises_the_lowest_ranks_error(tmp_path):
    """Whichever rank failed first (torchrun then ends the rest), the launcher shows one error."""
    from graft.errors import GraftError
    from graft.train.launch import _raise_first_error

    _raise_first_error(tmp_path)  # no process left an error: the exit code speaks alone
    (tmp_path / "error-rank-1.json").write_text(json.dumps({"message": "bad.json row 2: no output", "hint": "add one"}))
    (tmp_path / ".error-rank-0.json").write_text('{"message": "bad.js')  # cut off mid-write: not taken
    with pytest.raises(GraftError, match="bad.json row 2: no output") as info:
        _raise_first_error(tmp_path)
    assert info.value.hint == "add one"
    (tmp_path / "error-rank-1.json").rename(tmp_path / "error-rank-2.json")
    (tmp_path / "error-rank-10.json").write_text(json.dumps({"message": "rank 10's", "hint": None}))
    with pytest.raises(GraftError, match="bad.json row 2"):  # by rank number, not by name ("10" < "2")
        _raise_first_error(tmp_path)
