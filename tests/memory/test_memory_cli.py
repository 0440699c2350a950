"""`graft estimate` through the real entry point, on the tiny local model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

ENTRY = "from graft.cli import main; main()"


def graft(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-c", ENTRY, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _config(tmp_path, model_dir, data, **train):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"model": {"name": str(model_dir)}, "data": {"path": str(data), "max_length": 64},
                                    "technique": {"name": "lora"}, "train": {"batch_size": 8, **train}}))
    return path


def test_estimate_json_for_a_gpu_and_from_the_data(tmp_path, tiny_model_dir, tiny_chat_data):
    run = _config(tmp_path, tiny_model_dir, tiny_chat_data)
    r = graft("estimate", "-c", run, "--gpu", "rtx4090", "--json")
    assert r.returncode == 0, r.stderr
    worst = json.loads(r.stdout)
    assert worst["fits"] and worst["device"]["name"] == "rtx4090"
    names = [t["name"] for t in worst["terms"]]
    assert "runtime context (CUDA)" in names and "logits" in names
    assert worst["total_bytes"] == sum(t["bytes"] for t in worst["terms"] if t["phase"] == "static") + max(
        sum(t["bytes"] for t in worst["terms"] if t["phase"] == p) for p in ("forward-backward", "step"))

    r = graft("estimate", "-c", run, "--gpu", "rtx4090", "--json", "--from-data")
    assert r.returncode == 0, r.stderr
    real = json.loads(r.stdout)
    logits = lambda d: next(t["bytes"] for t in d["terms"] if t["name"] == "logits")
    assert logits(real) < logits(worst)  # short toy rows: far fewer targets than 8 x 64


def test_estimate_table_says_when_it_does_not_fit(tmp_path, tiny_model_dir, tiny_chat_data):
    run = _config(tmp_path, tiny_model_dir, tiny_chat_data)
    r = graft("estimate", "-c", run, "--vram", "200MiB", "--set", "train.gradient_checkpointing=true")
    assert r.returncode == 0, r.stderr
    assert "does not fit" in r.stdout and "runtime context (CUDA)" in r.stdout
    assert "checkpointed block inputs" in r.stdout  # --set reached the config


def test_estimate_unknown_gpu_is_a_user_error(tmp_path, tiny_model_dir, tiny_chat_data):
    r = graft("estimate", "-c", _config(tmp_path, tiny_model_dir, tiny_chat_data), "--gpu", "tpu9")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "unknown GPU" in r.stderr + r.stdout
