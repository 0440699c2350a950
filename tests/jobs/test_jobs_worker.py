"""WorkerPool with real child processes: a train job completes, the concurrency limit queues the
rest, cancel interrupts a run like Ctrl-C (it keeps a checkpoint), and after the process hosting
the workers is killed -9 mid-run, the next start resumes the job from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from graft.jobs import JobStore
from graft.jobs.worker import WorkerPool
from graft.train.run_folder import RunFolder


@pytest.fixture
def pool(db, runs_root):
    pools = []

    def make(concurrency=1, **kw):
        pools.append(WorkerPool(db, concurrency, runs_root, **kw))
        pools[-1].start()
        return pools[-1]

    yield make
    for p in pools:
        p.stop()


def test_two_jobs_with_concurrency_one_run_one_after_another(db, pool, train_spec, wait):
    store = JobStore(db)
    first, second = store.submit("train", train_spec()), store.submit("train", train_spec())
    pool(concurrency=1)
    wait(store, first.id, lambda j: j.status == "running", 60)
    seen_both_running = False
    while store.get(first.id).status == "running":
        seen_both_running |= store.get(second.id).status != "queued"
        time.sleep(0.05)
    assert not seen_both_running  # the second waited queued while the first ran
    done = [wait(store, j.id, lambda j: j.status not in ("queued", "running"), 120) for j in (first, second)]
    assert [j.status for j in done] == ["completed", "completed"], [j.error for j in done]
    assert done[1].started >= done[0].finished
    job = done[0]
    folder = RunFolder(job.result["run_dir"])
    assert folder.path.name == job.id and job.run_dir == str(folder.path)
    assert (folder.adapter / "adapter_model.safetensors").is_file() and job.result["summary"]["status"] == "completed"
    metric_steps = [e["payload"]["step"] for e in store.events(job.id, kind="metric") if e["payload"]["type"] == "train"]
    assert metric_steps == list(range(1, 11))  # every logged step, for the loss chart
    train = job.progress["tasks"]["train"]
    assert train["completed"] == train["total"] == 10 and "loss" in train
    statuses = [e["payload"]["status"] for e in store.events(job.id, kind="status")]
    assert statuses == ["queued", "running", "completed"]


def test_evaluate_export_and_benchmark_jobs_run_on_a_train_job(db, pool, train_spec, wait):
    store = JobStore(db)
    trained = store.submit("train", train_spec(**{"run_name": "colours"}))
    evaluated = store.submit("evaluate", {"run": trained.id, "limit": 4, "max_new_tokens": 4})
    exported = store.submit("export", {"run": "colours", "verify": False})
    base = train_spec(**{"train.max_steps": 2})
    bench = store.submit("benchmark", {k: v for k, v in base.items() if k not in ("output_dir", "run_name")}
                         | {"name": "tiny", "matrix": {"technique.r": [4]}})
    pool()
    done = [wait(store, j.id, lambda j: j.status not in ("queued", "running"), 300)
            for j in (trained, evaluated, exported, bench)]
    assert [j.status for j in done] == ["completed"] * 4, [j.error for j in done]
    assert done[0].run_dir.endswith("/colours")
    assert "perplexity" in json.dumps(done[1].result["tuned"])
    assert (RunFolder(done[0].run_dir).export_dir / "merged" / "config.json").is_file()
    assert done[3].result["cells"] == done[3].result["completed"] == 1


def test_cancel_running_train_job_keeps_a_checkpoint(db, pool, train_spec, wait):
    store = JobStore(db)
    job = store.submit("train", train_spec(**{"train.max_steps": 5000}))
    pool()
    wait(store, job.id, lambda j: _steps(j) >= 3, 90, "training steps")
    store.cancel(job.id)
    job = wait(store, job.id, lambda j: j.status != "running", 30)
    assert job.status == "cancelled" and job.error == "cancelled by request"
    folder = RunFolder(job.run_dir)
    assert folder.latest_checkpoint() is not None  # interrupted as by Ctrl-C: it checkpointed
    assert folder.read_summary()["status"] == "interrupted"


def test_stopping_the_pool_requeues_a_train_job_at_its_checkpoint(db, pool, train_spec, wait):
    store = JobStore(db)
    job = store.submit("train", train_spec(**{"train.max_steps": 5000}))
    workers = pool()
    wait(store, job.id, lambda j: _steps(j) >= 3, 90, "training steps")
    workers.stop()
    job = store.get(job.id)
    assert job.status == "queued" and RunFolder(job.run_dir).latest_checkpoint() is not None
    assert "pool is stopping" in store.events(job.id, kind="status")[-1]["payload"]["reason"]


def test_a_crashed_job_process_fails_with_a_reason_and_the_pool_goes_on(db, pool, train_spec, wait):
    store = JobStore(db)
    job = store.submit("train", train_spec(**{"train.max_steps": 5000}))
    pool()
    job = wait(store, job.id, lambda j: _steps(j) >= 1, 90, "training steps")
    os.kill(int(job.worker.rpartition(":")[2]), signal.SIGKILL)  # the job's own process, not the pool
    job = wait(store, job.id, lambda j: j.status != "running", 30)
    assert job.status == "failed" and "killed by signal 9" in job.error
    later = store.submit("evaluate", {"run": "no-such-run"})
    assert "no run 'no-such-run'" in wait(store, later.id, lambda j: j.status == "failed", 60).error


def _steps(job) -> int:
    return ((job.progress or {}).get("tasks", {}).get("train") or {}).get("completed", 0)


def _host(db, runs_root):
    """A process hosting only workers, in a session of its own (so it can be killed with its children)."""
    return subprocess.Popen([sys.executable, "-m", "graft.jobs.serve_workers", "--db", db, "--runs-root", str(runs_root),
                             "--stale-after", "5"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("kill", ["host", "host and job"])
def test_kill_9_during_training_then_restart_resumes_from_checkpoint(db, runs_root, train_spec, wait, kill):
    store = JobStore(db)
    job = store.submit("train", train_spec(**{"train.max_steps": 300, "checkpoint.every": 10}))
    host = _host(db, runs_root)
    try:
        job = wait(store, job.id, lambda j: _steps(j) >= 20, 120, "training steps")
        assert RunFolder(job.run_dir).latest_checkpoint() is not None
        if kill == "host":  # the job's process sees its parent gone, checkpoints and re-queues itself
            os.kill(host.pid, signal.SIGKILL)
        else:  # nothing runs on to tidy up: the next start finds the job running under a dead pid
            os.killpg(host.pid, signal.SIGKILL)
        host.wait(10)
        stopped = wait(store, job.id, lambda j: j.status != "running" or kill != "host", 30)
        if kill == "host":
            assert stopped.status == "queued"
        else:
            assert stopped.status == "running" and _steps(stopped) < 300
        host = _host(db, runs_root)
        done = wait(store, job.id, lambda j: j.status not in ("queued", "running"), 180)
    finally:
        if host.poll() is None:
            os.killpg(host.pid, signal.SIGTERM)
            host.wait(30)
    assert done.status == "completed", done.error
    assert done.attempts == 2 and done.result["resumed"] is True
    assert done.result["summary"]["steps"] == 300
    reasons = [e["payload"].get("reason", "") for e in store.events(done.id, kind="status")]
    assert any("resum" in r for r in reasons), reasons
    logs = [e["payload"]["message"] for e in store.events(done.id, kind="log")]
    assert any(m.startswith("resumed from step-") for m in logs)
    assert len(store.list()) == 1
