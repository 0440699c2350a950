"""`graft tune` as a user runs it: a line per trial, the summary table, best vs baseline, best.yaml
that `graft train -c` takes, the dashboard; a mistyped space key stops it before any training."""

from __future__ import annotations

import json

import pytest
import yaml

from graft.bench.store import Store
from graft.config import RunConfig
from testkit import run_graft

pytest.importorskip("optuna")  # the `tune` extra


def write_inputs(tmp_path, model_dir, rows) -> tuple:
    data = tmp_path / "toy.json"
    data.write_text(json.dumps(rows))
    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({
        "model": {"name": str(model_dir)},
        "data": {"path": str(data), "max_length": 64, "eval_size": 8},
        "technique": {"name": "lora", "r": 8, "alpha": 16},
        "train": {"batch_size": 8, "lr": 5e-3, "seed": 0, "threads": 1, "scheduler": "constant",
                  "warmup_ratio": 0.0, "max_steps": 4},
        "output_dir": str(tmp_path / "runs"),
    }))
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {type: float, low: 1e-3, high: 1e-2, log: true}\ntechnique.alpha: [8, 16, 32]\n")
    return run, space


def test_tune_command(tiny_model_dir, tmp_path, helpers):
    run, space = write_inputs(tmp_path, tiny_model_dir, helpers.toy_rows())
    db = tmp_path / "graft.db"
    r = run_graft("tune", "-c", run, "--space", space, "--trials", "2", "--name", "cli", "--db", db,
                  "--set", "train.max_steps=3")
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "train.eval_every is not set: evaluating every step (" in out  # a quarter of --set max_steps=3
    assert "trial #0 baseline lr=0.005 alpha=16 -> eval loss" in out and "trial #1 lr=" in out
    assert "study cli: 2 trials" in out and "best: trial " in out and "vs baseline" in out
    folder = tmp_path / "runs" / "cli"
    best = RunConfig.load(folder / "best.yaml")  # what `graft train -c best.yaml` reads
    assert best.train.max_steps == 3 and best.output_dir == str(tmp_path / "runs") and best.run_name is None
    assert (folder / "report" / "dashboard.html").is_file()
    assert "tuning" in (folder / "report" / "dashboard.html").read_text()
    assert [r["status"] for r in Store(db).records("tune-cli")] == ["completed", "completed"]
    # the results are listed where benchmarks are
    listed = run_graft("benchmark", "list", "--db", db)
    assert "tune-cli" in listed.stdout


def test_mistyped_space_key_stops_before_training(tiny_model_dir, tmp_path, helpers):
    run, space = write_inputs(tmp_path, tiny_model_dir, helpers.toy_rows())
    space.write_text("train.lrr: [0.001, 0.01]\n")
    r = run_graft("tune", "-c", run, "--space", space, "--trials", "2", "--db", tmp_path / "graft.db")
    assert r.returncode == 2
    assert f"{space}: train.lrr:" in r.stderr and "unknown option" in r.stderr
    assert not (tmp_path / "runs").exists()
