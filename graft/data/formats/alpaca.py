"""Alpaca: {"instruction", "input" (optional), "output", "system" (optional)} -> one exchange."""

from __future__ import annotations

from typing import Any

from graft.data.example import Example

from ._chat import Turn, build_messages
from ._common import get_str, require_dict

NAME = "alpaca"
REQUIRED = "instruction, output; optional input, system"


def detect(row: Any) -> bool:
    return isinstance(row, dict) and "instruction" in row and "output" in row


def convert(row: Any, source: str, row_no: int, system_prompt: str | None = None) -> Example:
    row = require_dict(row, source, row_no)
    instruction = get_str(row, "instruction", source, row_no)
    extra = get_str(row, "input", source, row_no, required=False, allow_empty=True)
    output = get_str(row, "output", source, row_no, empty_problem="empty response")
    system = get_str(row, "system", source, row_no, required=False, allow_empty=True)
    prompt = f"{instruction}\n\n{extra}" if extra and extra.strip() else instruction
    turns = [Turn("user", prompt, "instruction", "instruction"), Turn("assistant", output, "output", "output")]
    messages = build_messages(turns, source, row_no, "instruction", system=system, default_system=system_prompt)
    return Example(messages=messages, source=source, row=row_no)
