"""/api/runs over a tiny trained run (listing, detail, metrics, files, downloads that cannot leave
the folder) and /api/benchmarks over a stored benchmark (records and Vega-Lite charts)."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from graft.server import ServerSettings, errors, runs_api


@pytest.fixture(scope="module")
def runs_root(tiny_model_dir, tmp_path_factory, helpers):
    from graft.train.recipe import train

    root = tmp_path_factory.mktemp("runs_api")
    data = root / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    train(helpers.tiny_config(tiny_model_dir, data, root / "runs", **{"train.max_steps": 4}))
    (root / "runs" / "not-a-run").mkdir()
    (root / "secret.txt").write_text("outside")
    return root / "runs"


@pytest.fixture(scope="module")
def client(runs_root):
    app = FastAPI()
    errors.install(app)
    app.state.settings = ServerSettings(runs_root=str(runs_root), db=str(runs_root.parent / "graft.db"))
    app.include_router(runs_api.router)
    return TestClient(app)


def test_runs_listing(client):
    [run] = client.get("/api/runs").json()
    assert run["name"] == "run" and run["status"] == "completed" and run["technique"] == "lora"
    assert run["steps"] == 4 and run["total_steps"] == 4 and run["final_loss"] > 0


def test_run_detail_and_metrics(client):
    detail = client.get("/api/runs/run").json()
    assert detail["config"]["train"]["max_steps"] == 4 and detail["summary"]["status"] == "completed"
    rows = client.get("/api/runs/run/metrics").json()
    assert [r["step"] for r in rows if r.get("type") == "train"] == [1, 2, 3, 4]
    assert client.get("/api/runs/not-a-run").status_code == 404
    assert client.get("/api/runs/nope/metrics").json()["error"]["code"] == "not_found"


def test_files_and_download(client, runs_root):
    listed = {f["path"]: f for f in client.get("/api/runs/run/files").json()}
    assert {"config.yaml", "metrics.jsonl", "summary.json", "adapter/adapter_model.safetensors"} <= set(listed)
    r = client.get("/api/runs/run/files/adapter/adapter_model.safetensors")
    assert r.status_code == 200
    assert r.content == (runs_root / "run" / "adapter" / "adapter_model.safetensors").read_bytes()
    assert int(r.headers["content-length"]) == listed["adapter/adapter_model.safetensors"]["bytes"]
    assert client.get("/api/runs/run/files/nothing.bin").status_code == 404


@pytest.mark.parametrize("path", [
    "..%2F..%2Fsecret.txt", "adapter%2F..%2F..%2F..%2Fsecret.txt", "%2Fetc%2Fpasswd", "%2E%2E", "..%2Frun%2Fconfig.yaml",
    "adapter%5C..%5C..%5C..%5Csecret.txt",
])
def test_download_cannot_leave_the_run(client, path):
    r = client.get(f"/api/runs/run/files/{path}")
    assert r.status_code == 400, (path, r.status_code)
    assert b"outside" not in r.content


def test_symlink_out_is_neither_listed_nor_served(client, runs_root):
    link = runs_root / "run" / "escape.txt"
    link.symlink_to(runs_root.parent / "secret.txt")
    try:
        assert "escape.txt" not in {f["path"] for f in client.get("/api/runs/run/files").json()}
        r = client.get("/api/runs/run/files/escape.txt")
        assert r.status_code == 400 and "leads out" in r.json()["error"]["message"]
    finally:
        link.unlink()


def test_run_names_cannot_leave_the_root(client):
    for name in ["..", "..%2Fruns_api", "%2E%2E"]:
        assert client.get(f"/api/runs/{name}").status_code == 404, name
        assert client.get(f"/api/runs/{name}/files/secret.txt").status_code == 404, name


def test_benchmarks(client, runs_root):
    from graft.bench.store import Store

    store = Store(str(runs_root.parent / "graft.db"))
    store.save_benchmark("tiny", {"name": "tiny"}, ["c1", "c2"])
    trace = [{"step": s, "loss": 2.0 / s, "grad_norm": 1.0, "lr": 1e-3, "tokens": 64 * s, "elapsed_s": s} for s in (1, 2, 3)]
    store.save_cell({"benchmark": "tiny", "cell": "c1", "index": 0, "label": "lora", "params": {"technique.name": "lora"},
                     "status": "completed", "metrics": {"tokens_per_s": 100.0, "peak_memory_bytes": 2**30},
                     "trace": trace, "evals": []})
    assert client.get("/api/benchmarks").json() == [
        {"name": "tiny", "updated": client.get("/api/benchmarks").json()[0]["updated"], "cells": 2, "completed": 1, "failed": 0, "pruned": 0}]
    body = client.get("/api/benchmarks/tiny").json()
    assert [r["status"] for r in body["records"]] == ["completed", "pending"]
    assert body["charts"]["loss"]["$schema"].startswith("https://vega.github.io/schema/vega-lite/v5")
    r = client.get("/api/benchmarks/nope")
    assert r.status_code == 404 and "nope" in r.json()["error"]["message"]
