"""Benchmark records as CSV, JSON or a Markdown table (one row per cell, metrics flattened)."""

from __future__ import annotations

import csv
import io
import json

from graft.bench.record import flat_row

GIB = 1024 ** 3
FORMATS = ("csv", "json", "markdown")

# Markdown shows what a reader compares; CSV and JSON keep every field.
MARKDOWN_COLUMNS = (
    ("cell", "label", str), ("status", "status", str),
    ("tokens/s", "tokens_per_s", lambda v: f"{v:,.0f}"), ("steps/s", "steps_per_s", lambda v: f"{v:.3f}"),
    ("peak GiB", "peak_memory_bytes", lambda v: f"{v / GIB:.2f}"), ("avg GiB", "avg_memory_bytes", lambda v: f"{v / GIB:.2f}"),
    ("est. GiB", "estimated_memory_bytes", lambda v: f"{v / GIB:.2f}"),
    ("train loss", "train_loss", lambda v: f"{v:.3f}"), ("eval loss", "eval_loss", lambda v: f"{v:.3f}"),
    ("eval ppl", "eval_ppl", lambda v: f"{v:.2f}"), ("trainable", "trainable_params", lambda v: f"{v:,}"),
    ("trainable %", "trainable_percent", lambda v: f"{v:.3g}"),
)


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
