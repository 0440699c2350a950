"""Benchmark records as CSV, JSON or a Markdown table (one row per cell, metrics flattened)."""

from __future__ import annotations

import csv
import io
import json

from graft.bench.record import COLUMNS, flat_row

FORMATS = ("csv", "json", "markdown")
MARKDOWN_COLUMNS = (("cell", "label", str), ("status", "status", str), *COLUMNS)


def export(records: list[dict], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    return {"csv": to_csv, "json": to_json, "markdown": to_markdown}[fmt](records)


def to_json(records: list[dict]) -> str:
    return json.dumps(records, indent=2, default=str) + "\n"


def to_csv(records: list[dict]) -> str:
    rows = [flat_row(r) for r in records]
    fields = list(dict.fromkeys(k for row in rows for k in row))  # params differ between cells
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def to_markdown(records: list[dict]) -> str:
    lines = ["| " + " | ".join(t for t, _, _ in MARKDOWN_COLUMNS) + " |",
             "|" + "|".join("---" if k in ("label", "status") else "---:" for _, k, _ in MARKDOWN_COLUMNS) + "|"]
    for row in map(flat_row, records):
        cells = []
        for _, key, fmt in MARKDOWN_COLUMNS:
            value = row.get(key)
            cells.append("" if value is None else fmt(value).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
