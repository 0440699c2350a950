"""Durable background jobs: train, evaluate, benchmark and export runs kept in graft's database
and run by worker processes (see docs/jobs.md).

    store.py       the jobs and job_events tables and every state change (JobStore)
    specs.py       what each kind's spec may hold, checked at submit time
    execute.py     one job run by kind, its Progress turned into events
    run_one.py     the child process that runs one job (heartbeats, cancel, parent watch)
    worker.py      WorkerPool: N slots, each running claimed jobs in child processes
    serve_workers.py  a process hosting only a WorkerPool (`python -m graft.jobs.serve_workers`)
"""

from graft.jobs.store import KINDS, STATUSES, Job, JobNotFoundError, JobStateError, JobStore

__all__ = ["KINDS", "STATUSES", "Job", "JobNotFoundError", "JobStateError", "JobStore"]
