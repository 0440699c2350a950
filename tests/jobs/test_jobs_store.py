"""JobStore without workers: validation at submit, state changes, atomic claims, recovery rules,
and JobProgress turning a run's progress and metrics into events."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import timedelta

import pytest

from graft.errors import ConfigError
from graft.jobs import JobNotFoundError, JobStateError, JobStore
from graft.jobs.reporting import JobProgress
from graft.jobs.store import JobRow, now


@pytest.fixture
def store(db) -> JobStore:
    return JobStore(db)


def test_submit_get_list(store, train_spec):
    job = store.submit("train", train_spec())
    assert job.status == "queued" and len(job.id) == 12 and job.attempts == 0
    assert store.get(job.id).spec["train"]["max_steps"] == 10
    other = store.submit("evaluate", {"run": job.id})
    assert [j.id for j in store.list()] == [other.id, job.id]  # newest first
    assert [j.id for j in store.list(kind="train")] == [job.id]
    assert store.list(status="running") == []
    assert json.loads(json.dumps(job.to_dict()))["created"].endswith("+00:00")
    assert [e["payload"] for e in store.events(job.id)] == [{"status": "queued"}]
    with pytest.raises(JobNotFoundError):
        store.get("nope")


@pytest.mark.parametrize("kind, spec, field", [
    ("train", "LR", "lr"),
    ("train", "NO_DATA", "data"),
    ("train", "ESCAPE", "run_name"),
    ("evaluate", {"run": "r", "limt": 3}, "limt"),
    ("evaluate", {"run": "../etc"}, "run"),
    ("export", {"run": "r", "format": "onnx"}, "format"),
    ("download", {"hub_id": "../etc/passwd"}, "hub_id"),
    ("download", {"hub_id": "org/m", "run": "r"}, "run"),
    ("benchmark", {"model": {"name": "x"}, "data": {"path": "d.json"}, "matrix": {"train.lr": ["fast"]}}, "lr"),
    ("sing", {}, "kind"),
])
def test_bad_spec_is_a_config_error_before_queueing(store, train_spec, kind, spec, field):
    good = train_spec()
    spec = {"LR": {**good, "train": {**good["train"], "lr": "fast"}},
            "NO_DATA": {k: v for k, v in good.items() if k != "data"},
            "ESCAPE": {**good, "run_name": "../../elsewhere"}}.get(spec, spec) if isinstance(spec, str) else spec
    with pytest.raises(ConfigError, match=field):
        store.submit(kind, spec)
    assert store.list() == []


def test_cancel_queued_running_finished(store, train_spec):
    queued = store.submit("train", train_spec())
    assert store.cancel(queued.id).status == "cancelled"
    assert store.claim("w:1") is None  # a cancelled job is never claimed
    running = store.submit("train", train_spec())
    assert store.claim("w:1").id == running.id
    flagged = store.cancel(running.id)
    assert flagged.status == "running" and flagged.cancel_requested
    assert store.heartbeat(running.id, "w:1") is True  # the worker learns of it through its heartbeat
    assert store.finish(running.id, "cancelled", worker="w:1")
    done = store.submit("evaluate", {"run": "r"})
    store.claim("w:1")
    store.finish(done.id, "completed", {"ok": 1})
    with pytest.raises(JobStateError, match="completed already"):
        store.cancel(done.id)
    assert store.finish(done.id, "failed") is False  # a finished job is never reopened
    assert store.heartbeat(done.id, "w:1") is None


def test_claim_is_oldest_first_and_counts_attempts(store):
    first, second = (store.submit("evaluate", {"run": f"r{i}"}) for i in range(2))
    claimed = store.claim("w:1")
    assert claimed.id == first.id and claimed.attempts == 1 and claimed.worker == "w:1"
    assert store.claim("w:2").id == second.id
    assert store.claim("w:3") is None


CLAIMER = """
import sys, time
from graft.jobs import JobStore
store = JobStore(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
got = []
while (job := store.claim(sys.argv[3])) is not None:
    got.append(job.id)
print(" ".join(got))
"""


def test_claim_is_atomic_under_two_processes(store, db):
    import time

    ids = {store.submit("evaluate", {"run": f"r{i}"}).id for i in range(40)}
    go = str(time.time() + 3)  # both start claiming at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, db, go, f"w:{n}"], stdout=subprocess.PIPE, text=True)
             for n in range(2)]
    outs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    claimed = outs[0] + outs[1]
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert {j.worker for j in store.list(limit=100)} <= {"w:0", "w:1"}


def _set(store, job_id, **values):
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    with Session(store.engine) as s, s.begin():
        s.execute(update(JobRow).where(JobRow.id == job_id).values(**values))


def _run_folder(path, checkpoint_step=None):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("{}\n")
    if checkpoint_step is not None:
        cp = path / "checkpoints" / f"step-{checkpoint_step:06d}"
        cp.mkdir(parents=True)
        (cp / "state.json").write_text("{}")


def test_recover(store, train_spec, tmp_path):
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    jobs = {name: store.submit("train", train_spec()) for name in ("resume", "no_checkpoint", "stale", "alive", "cancel")}
    jobs["eval"] = store.submit("evaluate", {"run": "r"})
    jobs["download"] = store.submit("download", {"hub_id": "org/m"})
    for job in jobs.values():
        store.claim(f"{host}:{dead.pid}")
    _run_folder(tmp_path / "r1", checkpoint_step=5)
    _run_folder(tmp_path / "r2")
    _set(store, jobs["resume"].id, run_dir=str(tmp_path / "r1"))
    _set(store, jobs["no_checkpoint"].id, run_dir=str(tmp_path / "r2"))
    _set(store, jobs["stale"].id, worker="elsewhere:1", heartbeat=now() - timedelta(seconds=60))
    _set(store, jobs["alive"].id, worker="elsewhere:2", heartbeat=now())
    _set(store, jobs["cancel"].id, cancel_requested=True)

    done = {r["id"]: r for r in store.recover(stale_after_s=30)}
    action = {name: done.get(job.id, {}).get("action") for name, job in jobs.items()}
    assert action == {"resume": "requeued", "no_checkpoint": "failed", "stale": "failed", "alive": None,
                      "cancel": "cancelled", "eval": "failed", "download": "requeued"}
    resumed = store.get(jobs["resume"].id)
    assert resumed.status == "queued" and resumed.worker is None
    assert "resuming from checkpoint step 5" in store.events(resumed.id)[-1]["payload"]["reason"]
    failed = store.get(jobs["eval"].id)
    assert failed.error.startswith("the server or worker stopped while it ran (worker") and failed.finished
    assert "no heartbeat" in store.get(jobs["stale"].id).error
    assert store.recover(30) == []  # nothing twice
    assert "downloading again" in store.events(jobs["download"].id)[-1]["payload"]["reason"]
    assert len(store.list()) == 7  # and no record lost

    # a job re-queued MAX_ATTEMPTS times is not resumed again
    _set(store, resumed.id, status="running", worker=f"{host}:{dead.pid}", attempts=3)
    assert store.recover(30)[0]["action"] == "failed"
    assert "started 3 times" in store.get(resumed.id).error


def test_job_progress_throttles_and_reports_metric_rows(store, tmp_path):
    job = store.submit("evaluate", {"run": "r"})
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"type": "train", "step": 1, "loss": 9.0}) + "\n")  # an earlier attempt's
    progress = JobProgress(store, job.id, metrics, every_s=60)
    progress.start("train", total=100)
    for step in range(2, 12):
        with metrics.open("a") as f:
            f.write(json.dumps({"type": "train", "step": step, "loss": 1.0 / step}) + "\n")
        progress.advance("train", 1, loss=1.0 / step, tokens_per_s=100.0)
    progress.log("hello")
    progress.finish("train")
    kinds = [e["kind"] for e in store.events(job.id)]
    assert kinds.count("progress") == 2  # start and finish; the advances were throttled
    assert [e["payload"]["step"] for e in store.events(job.id, kind="metric")] == list(range(2, 12))
    assert store.events(job.id, kind="log")[0]["payload"] == {"message": "hello"}
    train = {"task": "train", "completed": 10, "total": 100, "loss": 1 / 11, "tokens_per_s": 100.0}
    assert store.get(job.id).progress == {**train, "tasks": {"train": train}}
    seqs = [e["seq"] for e in store.events(job.id)]
    assert store.events(job.id, after=seqs[-2]) == store.events(job.id)[-1:]


def test_a_stop_the_job_missed_is_raised_at_its_next_progress_report(store):
    job = store.submit("evaluate", {"run": "r"})
    reason = []
    progress = JobProgress(store, job.id, overdue_stop=lambda: reason[0] if reason else None)
    progress.advance("eval")  # nothing asked yet
    reason.append("stopped: the worker pool is stopping")
    with pytest.raises(KeyboardInterrupt, match="worker pool"):
        progress.advance("eval")
    progress.advance("eval")  # raised once: the run's own interrupt handling goes on undisturbed
