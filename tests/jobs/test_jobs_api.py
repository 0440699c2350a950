"""/api/jobs over real HTTP (uvicorn in a thread, workers in child processes): submit -> SSE
progress to completion -> adapter zip; typed errors; cancel; logs; list filters; the seed's
/api/models/train, /api/models/progress and /api/models/download (a job, against a stand-in Hub)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from contextlib import contextmanager

import httpx
import pytest
from fastapi import FastAPI

from graft.jobs import JobStore
from graft.server import errors, jobs_api, models_api
from graft.server.jobs_service import JobService
from graft.server.settings import ServerSettings
from testkit import fake_hub, running


@contextmanager
def served(db, runs_root, workers=1):
    app = FastAPI()
    errors.install(app)
    app.include_router(jobs_api.router)
    app.include_router(jobs_api.seed_router)
    app.include_router(models_api.router)
    app.state.jobs = JobService(ServerSettings(db=db, workers=workers, runs_root=str(runs_root)))
    app.state.jobs.start()
    try:
        with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            yield client
    finally:
        app.state.jobs.stop()


def sse(client, path, headers=None) -> list[dict]:
    """Every event of the stream until the server ends it: [{id, event, data}]."""
    out, current = [], {}
    with client.stream("GET", path, headers=headers or {}, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                if current:
                    out.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = json.loads(value) if key == "data" else value
    return out


def test_train_job_streams_progress_completes_and_adapter_downloads(db, runs_root, train_spec):
    with served(db, runs_root) as client:
        r = client.post("/api/jobs", json={"kind": "train", "spec": train_spec(**{"train.max_steps": 30})})
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["status"] == "queued" and job["kind"] == "train"

        events = sse(client, f"/api/jobs/{job['id']}/events")
        kinds = {e["event"] for e in events}
        assert {"status", "progress", "metric", "log"} <= kinds
        assert events[-1]["event"] == "status" and events[-1]["data"]["status"] == "completed"
        assert [int(e["id"]) for e in events] == sorted(int(e["id"]) for e in events)
        losses = [e["data"]["loss"] for e in events if e["event"] == "metric" and e["data"]["type"] == "train"]
        assert len(losses) == 30
        assert any(e["event"] == "progress" and e["data"].get("task") == "train" for e in events)

        # resuming the stream after an event gives the rest only
        tail = sse(client, f"/api/jobs/{job['id']}/events", headers={"Last-Event-ID": events[-3]["id"]})
        assert [e["id"] for e in tail] == [e["id"] for e in events[-2:]]
        assert [e["id"] for e in sse(client, f"/api/jobs/{job['id']}/events?after={events[-2]['id']}")] == [events[-1]["id"]]

        got = client.get(f"/api/jobs/{job['id']}").json()
        assert got["status"] == "completed" and got["result"]["summary"]["steps"] == 30
        r = client.get(f"/api/jobs/{job['id']}/artifacts/adapter")
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert {"adapter_config.json", "adapter_model.safetensors"} <= set(names)

        logs = client.get(f"/api/jobs/{job['id']}/logs").json()
        assert any(e["payload"]["message"].startswith("run folder") for e in logs)
        assert [j["id"] for j in client.get("/api/jobs?status=completed&kind=train").json()] == [job["id"]]
        assert client.get("/api/jobs?kind=export").json() == []
        r = client.post(f"/api/jobs/{job['id']}/cancel")
        assert r.status_code == 409 and "completed already" in r.json()["error"]["message"]


def test_the_seed_endpoints_train_and_report_progress(db, runs_root, train_spec, wait):
    with served(db, runs_root) as client:
        r = client.post("/api/models/train", json=train_spec(**{"train.max_steps": 20}))
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["kind"] == "train" and job["status"] == "queued"
        # the job is listed as soon as it is queued, and its progress can be polled until it is done
        assert job["id"] in {p["id"] for p in client.get("/api/models/progress").json()}
        seen = []
        while True:
            [now] = client.get("/api/models/progress", params={"job_id": job["id"]}).json()
            seen.append(now)
            if now["status"] in ("completed", "failed"):
                break
        assert now["status"] == "completed" and now["error"] is None, now
        assert now["run_dir"].endswith(job["id"]) and isinstance(now["loss"], float)
        # step/total count optimizer steps whatever the job does now; a finished job shows them all done
        assert (now["step"], now["total"], now["fraction"]) == (20, 20, 1.0), now
        steps = [p["step"] for p in seen if p["step"] is not None]
        assert steps == sorted(steps) and all(p["total"] in (None, 20) for p in seen)
        assert any(p["task"] == "train" for p in seen)
        assert client.get("/api/models/progress").json() == []  # nothing queued or running any more

        bad = client.post("/api/models/train", json={**train_spec(), "technique": {"name": "lora", "r": 0}})
        assert bad.status_code == 400 and "technique: lora: r: Input should be greater than or equal to 1" in bad.text
        assert client.get("/api/models/progress", params={"job_id": "nope"}).status_code == 404
        other = client.post("/api/jobs", json={"kind": "evaluate", "spec": {"run": job["id"]}}).json()
        r = client.get("/api/models/progress", params={"job_id": other["id"]})
        assert r.status_code == 409 and "not a training run" in r.text


def test_errors_and_cancel_of_a_queued_job(db, runs_root, train_spec):
    with served(db, runs_root, workers=0) as client:  # no workers: jobs stay queued
        bad = train_spec()
        bad["train"]["batch_size"] = 0
        r = client.post("/api/jobs", json={"kind": "train", "spec": bad})
        assert r.status_code == 400 and "batch_size" in r.json()["error"]["message"]
        assert client.get("/api/jobs").json() == []  # nothing was queued
        assert client.post("/api/jobs", json={"kind": "dance", "spec": {}}).status_code == 422
        assert client.get("/api/jobs?status=lost").status_code == 422
        for path in ("/api/jobs/nope", "/api/jobs/nope/logs", "/api/jobs/nope/events", "/api/jobs/nope/artifacts/adapter"):
            r = client.get(path)
            assert r.status_code == 404 and "nope" in r.json()["error"]["message"], path
        assert client.post("/api/jobs/nope/cancel").status_code == 404

        job = client.post("/api/jobs", json={"kind": "train", "spec": train_spec()}).json()
        assert client.get(f"/api/jobs/{job['id']}/artifacts/adapter").status_code == 409
        r = client.post(f"/api/jobs/{job['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        events = sse(client, f"/api/jobs/{job['id']}/events")  # a finished job's stream ends at once
        assert [e["data"]["status"] for e in events] == ["queued", "cancelled"]


@pytest.mark.parametrize("spec", [{"run": "x", "out": "/tmp"}, {"run": "../x"}])
def test_export_spec_cannot_name_a_path(db, runs_root, spec):
    with served(db, runs_root, workers=0) as client:
        r = client.post("/api/jobs", json={"kind": "export", "spec": spec})
        assert r.status_code == 400, r.text


def test_a_model_download_is_a_job_with_progress_in_mib(db, runs_root, wait, tmp_path, monkeypatch):
    files = {"config.json": b'{"model_type": "llama"}', "model.safetensors": bytes(range(256)) * 10240,  # 2.5 MiB
             "tokenizer.json": b"{}", "pytorch_model.bin": b"pickled weights"}
    ended = lambda job: job.status not in ("queued", "running")  # noqa: E731
    with fake_hub("org/tiny", files) as (url, _):
        # the job's process is a fresh Python: it reads these as huggingface_hub is imported
        for key, value in {"HF_ENDPOINT": url, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}.items():
            monkeypatch.setenv(key, value)
        with served(db, runs_root) as client:
            r = client.post("/api/models/download", json={"hub_id": "org/tiny"})
            assert r.status_code == 201, r.text
            job = r.json()
            assert job["kind"] == "download" and job["spec"] == {"hub_id": "org/tiny", "revision": None}
            absent = client.post("/api/models/download", json={"hub_id": "org/absent"}).json()
            wait(JobStore(db), job["id"], ended, what="the download")
            wait(JobStore(db), absent["id"], ended, what="the failed download")
            done, gone = (client.get(f"/api/jobs/{j['id']}").json() for j in (job, absent))
            logs = client.get(f"/api/jobs/{job['id']}/logs").json()
    assert done["status"] == "completed", done
    folder = Path(done["result"]["path"])
    assert done["result"]["name"] == "org/tiny" and folder.is_relative_to(tmp_path / "hf")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {k: v for k, v in files.items() if k != "pytorch_model.bin"}
    download = done["progress"]["tasks"]["download"]
    assert (download["completed"], download["total"]) == (3, 3)  # MiB: 2.5 MiB and the small files, rounded up
    assert any(e["payload"].get("message") == "downloading org/tiny from the Hugging Face Hub" for e in logs)
    assert gone["status"] == "failed" and "'org/absent' not found on the Hub" in gone["error"]
