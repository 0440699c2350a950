"""A process that only runs jobs: `python -m graft.jobs.serve_workers --db URL --runs-root DIR -n 2`.

For a worker apart from the API server (another machine sharing a PostgreSQL database, or a
server started with workers: 0). Stops on SIGINT or SIGTERM, interrupting its running jobs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from graft.jobs.worker import WorkerPool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graft.jobs.serve_workers", description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="SQLAlchemy URL or SQLite file (default: graft's database)")
    parser.add_argument("--runs-root", default=None, help="where run folders go (default: GRAFT_HOME/runs)")
    parser.add_argument("-n", "--concurrency", type=int, default=1, help="jobs run at once")
    parser.add_argument("--stale-after", type=float, default=30.0, help="seconds without a heartbeat before a job counts as lost")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pool = WorkerPool(args.db, args.concurrency, args.runs_root, stale_after_s=args.stale_after)
    pool.start()
    print(f"workers ready: {args.concurrency} slot(s)", flush=True)
    stop.wait()
    pool.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
