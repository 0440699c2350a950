"""`kill -9` of `graft serve` (and the job process under it) during a training job submitted over HTTP;
the next `graft serve` finds the job, resumes it from its checkpoint and completes it. No record is lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from graft.jobs import JobStore


def _serve(db: str, runs_root, port: int) -> subprocess.Popen:
    """`graft serve` with one embedded worker, in a session of its own (killed with its children)."""
    return subprocess.Popen([sys.executable, "-c", "from graft.cli import main; main()", "serve", "--port", str(port),
                             "--db", db, "--runs-root", str(runs_root), "--workers", "1"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "graft serve did not come up"
        time.sleep(0.2)


def _steps(job: dict) -> int:
    return ((job.get("progress") or {}).get("tasks", {}).get("train") or {}).get("completed", 0)


def test_kill_9_the_server_mid_training_then_restart_resumes(db, runs_root, train_spec, wait):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = _serve(db, runs_root, port)
    try:
        _up(url)
        spec = train_spec(**{"train.max_steps": 300, "checkpoint.every": 10})
        job = httpx.post(f"{url}/api/jobs", json={"kind": "train", "spec": spec}).json()
        deadline = time.monotonic() + 120
        while _steps(job) < 20:
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
            job = httpx.get(f"{url}/api/jobs/{job['id']}").json()
        os.killpg(server.pid, signal.SIGKILL)  # the server and the job's process: nothing tidies up
        server.wait(10)
        store = JobStore(db)
        assert store.get(job["id"]).status == "running"  # as the crash left it
        server = _serve(db, runs_root, port)
        _up(url)
        done = wait(store, job["id"], lambda j: j.status not in ("queued", "running"), 180)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
    assert done.status == "completed", done.error
    assert done.attempts == 2 and done.result["resumed"] is True and done.result["summary"]["steps"] == 300
    assert [j.id for j in store.list()] == [job["id"]]
