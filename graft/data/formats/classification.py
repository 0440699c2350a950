"""Classification: {"text" or "sentence", "label"}; the label is kept as a string."""

from __future__ import annotations

from typing import Any

from graft.data.example import Example
from graft.errors import DataRowError

from ._common import describe, get_str, require_dict

NAME = "classification"
REQUIRED = "text (or sentence), label"
TEXT_KEYS = ("text", "sentence")  # GLUE-style TSVs (SST-2) call the text column "sentence"


def detect(row: Any) -> bool:
    return isinstance(row, dict) and "label" in row and any(k in row for k in TEXT_KEYS)


def convert(row: Any, source: str, row_no: int, system_prompt: str | None = None) -> Example:
    row = require_dict(row, source, row_no)
    key = next((k for k in TEXT_KEYS if k in row), None)
    if key is None:
        raise DataRowError(source, row_no, "text", "missing (a 'sentence' field would also do)")
    # Strip: GLUE files keep a stray space before the tab, which would otherwise reach the prompt.
    text = get_str(row, key, source, row_no).strip()
    return Example(text=text, label=_label(row, source, row_no), source=source, row=row_no)


def _label(row: dict[str, Any], source: str, row_no: int) -> str:
    value = row.get("label")
    if value is None:
        raise DataRowError(source, row_no, "label", "missing" if "label" not in row else "is null")
    # bool is an int subclass, but True/False as a class name is almost surely a data mistake.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataRowError(source, row_no, "label", f"expected a string or an integer, got {describe(value)}")
    label = str(value).strip()
    if not label:
        raise DataRowError(source, row_no, "label", "empty")
    return label
