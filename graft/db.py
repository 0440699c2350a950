"""The one database graft keeps its records in: SQLite `graft.db` in graft's home by default,
any SQLAlchemy URL (PostgreSQL, say) through GRAFT_DB_URL or an explicit argument.

Each feature declares its own tables on its own metadata (benchmarks, served requests, jobs) and
creates them with `ensure_tables`; they share this engine factory so they share one file.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event

from graft.paths import graft_home

_ENGINES: dict[str, Engine] = {}


def default_url() -> str:
    return os.environ.get("GRAFT_DB_URL") or sqlite_url(graft_home() / "graft.db")


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


def as_url(where: str | Path | None) -> str:
    """A URL from a URL, a file path (SQLite) or None (the default)."""
    if where is None:
        return default_url()
    text = str(where)
    return text if "://" in text else sqlite_url(text)


def engine(where: str | Path | None = None) -> Engine:
    """A shared engine for the database at `where` (URL, SQLite file path, or None for the default)."""
    url = as_url(where)
    if url not in _ENGINES:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            made = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(made, "connect", _sqlite_pragmas)
        else:
            made = create_engine(url, pool_pre_ping=True)
            event.listen(made, "handle_error", _failed_ping_is_a_disconnect)
        _ENGINES[url] = made
    return _ENGINES[url]


def ensure_tables(metadata: MetaData, where: str | Path | None = None) -> Engine:
    made = engine(where)
    metadata.create_all(made)
    return made


def _failed_ping_is_a_disconnect(context) -> None:
    # A query cut short by KeyboardInterrupt (a job stopped mid-write) goes back to the pool still
    # busy; the pre-ping on its next checkout then fails with an error the driver does not call a
    # disconnect, and that error reached the caller. Any failed ping means the connection is unusable:
    # marked so, the pool drops it and connects afresh.
    # (A KeyboardInterrupt during the ping itself stays what it is: the caller must see it.)
    if context.is_pre_ping and isinstance(context.original_exception, Exception):
        context.is_disconnect = True


def _sqlite_pragmas(connection, _record) -> None:
    # several processes (server, workers, the CLI) share the file: wait for a lock rather than fail.
    # No WAL: a copied graft.db would then miss what still sits in its -wal file.
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
