"""The log of served requests, one row each, in graft's database (see graft/db.py).

The server writes a row per chat completion; `/metrics`, `graft monitor` and drift detection read
them. The prompt text is kept (drift needs it) unless the server runs with prompt logging off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Boolean, DateTime, Float, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from graft.db import ensure_tables


class Base(DeclarativeBase):
    pass


class RequestRow(Base):
    __tablename__ = "served_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model: Mapped[str] = mapped_column(String(200), index=True)  # the id the client asked for
    base: Mapped[str] = mapped_column(Text)  # the base model's spec
    adapter: Mapped[str | None] = mapped_column(Text, nullable=True)  # adapter/run folder, None for the base
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)  # user text; None when not logged
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_s: Mapped[float] = mapped_column(Float)  # request in to last token out
    first_token_s: Mapped[float | None] = mapped_column(Float, nullable=True)  # time to the first token
    tokens_per_s: Mapped[float] = mapped_column(Float)  # completion tokens over generation time
    stream: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20))  # "ok" | "error"
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass
class Served:
    """One finished request, as the server measured it."""

    model: str
    base: str
    adapter: str | None
    prompt: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    first_token_s: float | None
    tokens_per_s: float
    stream: bool
    status: str = "ok"
    error: str | None = None


COLUMNS = ("id", "created", "model", "base", "adapter", "prompt", "prompt_tokens", "completion_tokens", "latency_s",
           "first_token_s", "tokens_per_s", "stream", "status", "error")


class RequestLog:
    def __init__(self, where: str | Path | None = None):
        self.engine = ensure_tables(Base.metadata, where)

    def record(self, served: Served) -> int:
        with Session(self.engine) as s, s.begin():
            row = RequestRow(created=datetime.now(timezone.utc), **served.__dict__)
            s.add(row)
            s.flush()
            return row.id

    def recent(self, limit: int = 100, model: str | None = None) -> list[dict]:
        """Newest first, as plain dicts."""
        query = select(RequestRow).order_by(RequestRow.id.desc()).limit(limit)
        if model is not None:
            query = query.where(RequestRow.model == model)
        with Session(self.engine) as s:
            return [_as_dict(r) for r in s.scalars(query)]

    def prompts(self, model: str | None = None, adapter: str | None = None, since: datetime | None = None) -> list[str]:
        """Logged prompt texts of successful requests, oldest first, filtered by served model id or adapter folder."""
        query = select(RequestRow.prompt).where(RequestRow.prompt.is_not(None), RequestRow.status == "ok")
        if model is not None:
            query = query.where(RequestRow.model == model)
        if adapter is not None:
            query = query.where(RequestRow.adapter == adapter)
        if since is not None:
            query = query.where(RequestRow.created >= since)
        with Session(self.engine) as s:
            return list(s.scalars(query.order_by(RequestRow.id)))


def _as_dict(row: RequestRow) -> dict:
    out = {c: getattr(row, c) for c in COLUMNS}
    out["created"] = row.created.isoformat(timespec="milliseconds")
    return out
