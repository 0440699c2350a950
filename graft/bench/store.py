"""Benchmark results in SQLite (SQLAlchemy), in graft's home folder unless a path is given.

One row per benchmark (its latest matrix and the ids of its cells, in order) and one per cell
result. A cell row is keyed by (benchmark, cell id), so re-running a matrix finds what is done.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from graft.db import ensure_tables
from graft.errors import ConfigError


class Base(DeclarativeBase):
    pass


class BenchmarkRow(Base):
    __tablename__ = "benchmarks"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    spec: Mapped[dict] = mapped_column(JSON)
    cells: Mapped[list] = mapped_column(JSON)  # cell ids of the latest expansion, in order
    updated: Mapped[datetime] = mapped_column(DateTime)


class CellRow(Base):
    __tablename__ = "benchmark_cells"
    __table_args__ = (UniqueConstraint("benchmark", "cell"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    benchmark: Mapped[str] = mapped_column(String(200), index=True)
    cell: Mapped[str] = mapped_column(String(40))
    index: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    wall_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    record: Mapped[dict] = mapped_column(JSON)  # the whole record (graft/bench/record.py)


class Store:
    def __init__(self, where: str | Path | None = None):
        """`where`: an SQLAlchemy URL, an SQLite file, or None for graft's database (GRAFT_DB_URL or graft.db)."""
        self.engine = ensure_tables(Base.metadata, where)
        self.path = self.engine.url.render_as_string(hide_password=True)  # where, for messages

    def save_benchmark(self, name: str, spec: dict, cell_ids: list[str]) -> None:
        with Session(self.engine) as s, s.begin():
            row = s.get(BenchmarkRow, name)
            if row is None:
                s.add(BenchmarkRow(name=name, spec=spec, cells=cell_ids, updated=datetime.now()))
            else:
                row.spec, row.cells, row.updated = spec, cell_ids, datetime.now()

    def save_cell(self, record: dict) -> None:
        record = json.loads(json.dumps(record, default=str))  # JSON-safe, detached from the caller's objects
        with Session(self.engine) as s, s.begin():
            row = s.scalar(select(CellRow).where(CellRow.benchmark == record["benchmark"], CellRow.cell == record["cell"]))
            fields = dict(index=record["index"], label=record["label"], status=record["status"],
                          error=record.get("error"), wall_s=(record.get("metrics") or {}).get("wall_s"), record=record)
            if row is None:
                s.add(CellRow(benchmark=record["benchmark"], cell=record["cell"], **fields))
            else:
                for key, value in fields.items():
                    setattr(row, key, value)

    def cell(self, benchmark: str, cell: str) -> dict | None:
        with Session(self.engine) as s:
            row = s.scalar(select(CellRow).where(CellRow.benchmark == benchmark, CellRow.cell == cell))
            return row.record if row else None

    def names(self) -> list[dict]:
        """Every benchmark with its cell counts by status."""
        with Session(self.engine) as s:
            out = []
            for b in s.scalars(select(BenchmarkRow).order_by(BenchmarkRow.updated.desc())):
                statuses = [r.get("status") for r in self._records(s, b)]
                out.append({"name": b.name, "updated": b.updated.isoformat(timespec="seconds"), "cells": len(b.cells),
                            **{k: statuses.count(k) for k in ("completed", "failed", "pruned")}})
            return out

    def records(self, benchmark: str) -> list[dict]:
        """The benchmark's cells in matrix order; cells never run come back as pending records."""
        with Session(self.engine) as s:
            row = s.get(BenchmarkRow, benchmark)
            if row is None:
                known = ", ".join(sorted(s.scalars(select(BenchmarkRow.name)))) or "none yet"
                raise ConfigError(f"no benchmark named '{benchmark}' in {self.path} (known: {known})")
            return self._records(s, row)

    def _records(self, s: Session, row: BenchmarkRow) -> list[dict]:
        stored = {r.cell: r.record for r in s.scalars(select(CellRow).where(CellRow.benchmark == row.name))}
        return [stored.get(cid) or {"benchmark": row.name, "cell": cid, "index": i, "label": cid, "params": {},
                                    "status": "pending", "metrics": None, "trace": [], "evals": []}
                for i, cid in enumerate(row.cells)]
