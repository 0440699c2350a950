"""Plain text: {"text"} for continued pre-training; a .txt file is one such row."""

from __future__ import annotations

from typing import Any

from graft.data.example import Example

from ._common import get_str, require_dict

NAME = "text"
REQUIRED = "text"


def detect(row: Any) -> bool:
    return isinstance(row, dict) and "text" in row


def convert(row: Any, source: str, row_no: int, system_prompt: str | None = None) -> Example:
    row = require_dict(row, source, row_no)
    return Example(text=get_str(row, "text", source, row_no), source=source, row=row_no)
