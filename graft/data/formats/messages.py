"""Messages (OpenAI style): {"messages": [{"role", "content"}, ...]}."""

from __future__ import annotations

from typing import Any

from graft.data.example import Example

from ._chat import build_messages, parse_turns
from ._common import require_dict

NAME = "messages"
REQUIRED = "messages: [{role, content}, ...]"
ROLES = {"system": "system", "user": "user", "assistant": "assistant"}


def detect(row: Any) -> bool:
    return isinstance(row, dict) and isinstance(row.get("messages"), list)


def convert(row: Any, source: str, row_no: int, system_prompt: str | None = None) -> Example:
    row = require_dict(row, source, row_no)
    turns = parse_turns(row, "messages", "role", "content", ROLES, source, row_no)
    messages = build_messages(turns, source, row_no, "messages", default_system=system_prompt)
    return Example(messages=messages, source=source, row=row_no)
