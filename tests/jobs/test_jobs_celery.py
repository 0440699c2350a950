"""The Celery backend against a real Redis (Debian redis-server) and a real PostgreSQL: jobs submitted
to the store and enqueued through Redis are run to completion by a `graft worker` process.

Skips with the reason when redis-server, celery or the PostgreSQL pieces are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import test_jobs_postgres

postgres_url = test_jobs_postgres.postgres_url  # the session's PostgreSQL fixture, shared


@pytest.fixture(scope="session")
def redis_url():
    """A private redis-server on a free port, no persistence, in a temporary folder; yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server not installed (Debian: apt-get install redis-server; scripts/setup.sh --services)")
    pytest.importorskip("celery", reason='celery missing: pip install "graft[celery]"')
    root, port = Path(tempfile.mkdtemp(prefix="graft-redis-")), test_jobs_postgres.free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(root), "--daemonize", "no"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None:
                pytest.fail(f"redis-server exited: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def start_worker(broker: str, db: str, runs_root: Path, log: Path) -> subprocess.Popen:
    """`graft worker` (the Typer command of graft/cli/worker.py) as a process of its own."""
    code = "import typer; from graft.cli.worker import worker; typer.run(worker)"
    return subprocess.Popen([sys.executable, "-c", code, "--broker", broker, "--db", db, "--concurrency", "1",
                             "--runs-root", str(runs_root)], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def healthy(broker: str, tries: int = 20) -> bool:
    """The container healthcheck: this host's worker answers a ping through Redis (it may still be starting)."""
    ping = [sys.executable, "-m", "graft.jobs.celery_backend", "ping"]
    for _ in range(tries):
        if subprocess.run(ping, env={**os.environ, "GRAFT_BROKER_URL": broker}, capture_output=True, timeout=30).returncode == 0:
            return True
        time.sleep(1)
    return False


def wait_finished(store, job_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = store.get(job_id).status
        if status in ("completed", "failed", "cancelled"):
            return status
        time.sleep(0.3)
    return store.get(job_id).status


def test_missing_celery_is_a_clear_error(monkeypatch):
    from graft.errors import GraftError
    from graft.jobs import celery_backend

    monkeypatch.setitem(sys.modules, "celery", None)  # import celery -> ImportError
    with pytest.raises(GraftError) as caught:
        celery_backend.make_app("redis://127.0.0.1:1/0")
    assert 'pip install "graft[celery]"' in caught.value.hint


def test_no_broker_is_a_config_error(monkeypatch):
    from graft.errors import ConfigError
    from graft.jobs.celery_backend import BROKER_ENV, broker_url

    monkeypatch.delenv(BROKER_ENV, raising=False)
    with pytest.raises(ConfigError, match=BROKER_ENV):
        broker_url()


def test_worker_runs_jobs_from_redis(redis_url, postgres_url, tiny_model_dir, tmp_path, helpers):
    """Two train jobs in PostgreSQL; only the first is enqueued (as if the API died before the second's
    enqueue): the worker runs the first from its Redis message and announces the second itself on start."""
    from graft.jobs import JobStore
    from graft.jobs.celery_backend import enqueue

    data = tmp_path / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    store = JobStore(postgres_url)
    spec = lambda name, steps: helpers.tiny_config(tiny_model_dir, data, tmp_path / "ignored", **{  # noqa: E731
        "train.max_steps": steps, "run_name": name}).model_dump(mode="json")
    first, second = store.submit("train", spec("celery-a", 6)), store.submit("train", spec("celery-b", 3))
    enqueue(first.id, redis_url)
    assert store.get(first.id).status == "queued"  # nothing runs it until a worker is there

    runs, log = tmp_path / "runs", tmp_path / "worker.log"
    worker = start_worker(redis_url, postgres_url, runs, log)
    try:
        assert healthy(redis_url), log.read_text()[-3000:]
        statuses = [wait_finished(store, job.id, 90) for job in (first, second)]
        assert statuses == ["completed", "completed"], log.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
    done = store.get(first.id)
    assert Path(done.run_dir) == runs / "celery-a" and (runs / "celery-a" / "adapter").is_dir()
    assert done.result["summary"] and done.attempts == 1
    metrics = [e for e in store.events(first.id, kind="metric") if "loss" in e["payload"]]
    assert metrics, "the training loss never reached the job's events"
    assert (runs / "celery-b" / "adapter").is_dir()
    assert worker.returncode is not None


def test_stopped_worker_requeues_and_next_worker_resumes(redis_url, postgres_url, tiny_model_dir, tmp_path, helpers):
    """SIGTERM (docker stop) while a training job runs: it checkpoints and goes back to the queue;
    a worker started later announces it and resumes it from that checkpoint."""
    from graft.jobs import JobStore
    from graft.jobs.store import resumable

    data = tmp_path / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    store = JobStore(postgres_url)
    spec = helpers.tiny_config(tiny_model_dir, data, tmp_path / "ignored", **{
        "train.max_steps": 400, "checkpoint.every": 5, "run_name": "celery-resume"}).model_dump(mode="json")
    import redis

    queue = redis.Redis.from_url(redis_url)
    queue.delete("graft")  # nothing left from earlier tests: the only ring is the worker's own at start
    job = store.submit("train", spec)
    runs = tmp_path / "runs"

    worker = start_worker(redis_url, postgres_url, runs, tmp_path / "worker1.log")
    try:
        deadline = time.monotonic() + 60
        while not resumable(store.get(job.id)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.get(job.id).status == "running" and resumable(store.get(job.id)), (tmp_path / "worker1.log").read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    stopped = store.get(job.id)
    why = [e["payload"] for kind in ("status", "log") for e in store.events(job.id, kind=kind)[-2:]]  # if it fails
    assert stopped.status == "queued", (stopped.status, stopped.error, why, (tmp_path / "worker1.log").read_text()[-2000:])
    assert queue.llen("graft") == 1  # announced again, for any worker still up

    worker = start_worker(redis_url, postgres_url, runs, tmp_path / "worker2.log")
    try:
        assert wait_finished(store, job.id, 90) == "completed", (tmp_path / "worker2.log").read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    done = store.get(job.id)
    assert done.result["resumed"] is True and done.attempts == 2


def test_api_with_a_broker_announces_jobs_and_runs_none_itself(redis_url, postgres_url, tiny_model_dir, tmp_path,
                                                                helpers):
    """`graft serve --broker`: a job submitted through the API lands in the database and one message in
    Redis's graft queue; no embedded worker takes it."""
    import redis
    from fastapi.testclient import TestClient

    from graft.jobs.celery_backend import QUEUE
    from graft.server import ServerSettings, create_app

    data = tmp_path / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    spec = helpers.tiny_config(tiny_model_dir, data, tmp_path, **{"train.max_steps": 2}).model_dump(mode="json")
    queue = redis.Redis.from_url(redis_url)
    before = queue.llen(QUEUE)
    app = create_app(None, ServerSettings(db=postgres_url, broker_url=redis_url, runs_root=str(tmp_path / "runs")))
    assert app.state.jobs.pool is None
    with TestClient(app) as client:
        job = client.post("/api/jobs", json={"kind": "train", "spec": spec}).json()
        assert job["status"] == "queued"
        assert queue.llen(QUEUE) == before + 1
        time.sleep(1)
        assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "queued"  # only a worker would run it
