"""A trial as a benchmark record, read from its run folder: a diverged (NaN) trial still makes strict
JSON, so the dashboard API can send it."""

from __future__ import annotations

import json
import math

from fastapi import FastAPI
from fastapi.testclient import TestClient

from graft.bench.store import Store
from graft.server import ServerSettings, errors, runs_api
from graft.tune.records import trial_record
from graft.tune.trial import Outcome


def test_diverged_trial_record_is_strict_json_and_the_api_serves_it(make_config, tmp_path):
    cfg = make_config("m", tmp_path / "d.json", tmp_path / "runs")
    run = tmp_path / "runs" / "trial-001"
    run.mkdir(parents=True)
    nan = float("nan")
    (run / "summary.json").write_text(json.dumps({"status": "stopped", "steps": 2, "train_time_s": 1.0,
                                                  "final_loss": nan, "tokens": 10, "tokens_per_s": 10.0}))
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"type": "train", "step": 1, "loss": 3.0, "grad_norm": 1.0},
        {"type": "train", "step": 2, "loss": nan, "grad_norm": nan},
        {"type": "eval", "step": 2, "eval_loss": nan, "eval_ppl": nan}]) + "\n")
    outcome = Outcome(1, {"train.lr": 10.0}, "pruned", run, value=nan, step=2, config=cfg)
    record = trial_record("tune-x", outcome, cfg, baseline=False)
    json.dumps(record, allow_nan=False)  # raises on NaN
    assert record["status"] == "pruned" and record["error"] is None and record["cell"] == "trial-001"
    assert record["trial"] == {"number": 1, "baseline": False, "state": "pruned", "value": None, "step": 2}
    assert record["trace"][1]["loss"] is None and record["trace"][0]["loss"] == 3.0
    assert record["metrics"]["final_loss"] is None and record["metrics"]["steps"] == 2
    assert not any(isinstance(v, float) and math.isnan(v) for v in record["metrics"].values())

    store = Store(tmp_path / "graft.db")
    store.save_benchmark("tune-x", {"kind": "tune"}, ["trial-001"])
    store.save_cell(record)
    app = FastAPI()
    errors.install(app)
    app.state.settings = ServerSettings(runs_root=str(tmp_path / "runs"), db=str(tmp_path / "graft.db"))
    app.include_router(runs_api.router)
    response = TestClient(app).get("/api/benchmarks/tune-x")
    assert response.status_code == 200
    assert response.json()["records"][0]["status"] == "pruned"
