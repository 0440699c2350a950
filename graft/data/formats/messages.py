"""Messages (OpenAI style): {"messages": [{"role", "content"}, ...]}."""

from __future__ import annotations

from typing import Any

from graft.data.example import Example
from graft.errors import DataRowError

from ._chat import Turn, build_messages
from ._common import describe, get_list, get_str, require_dict

NAME = "messages"
REQUIRED = "messages: [{role, content}, ...]"
ROLES = ("system", "user", "assistant")


def detect(row: Any) -> bool:
    return isinstance(row, dict) and isinstance(row.get("messages"), list)


def convert(row: Any, source: str, row_no: int, system_prompt: str | None = None) -> Example:
    row = require_dict(row, source, row_no)
    turns = []
    for i, turn in enumerate(get_list(row, "messages", source, row_no)):
        where = f"messages[{i}]"
        if not isinstance(turn, dict):
            raise DataRowError(source, row_no, where,
                               f"expected an object with 'role' and 'content', got {describe(turn)}")
        role = get_str(turn, "role", source, row_no, field=f"{where}.role")
        if role not in ROLES:
            raise DataRowError(source, row_no, f"{where}.role",
                               f"unknown role '{role}'; expected one of {', '.join(ROLES)}")
        if "content" not in turn:
            raise DataRowError(source, row_no, f"{where}.content", "missing")
        turns.append(Turn(role, turn["content"], f"{where}.role", f"{where}.content"))
    messages = build_messages(turns, source, row_no, "messages", default_system=system_prompt)
    return Example(messages=messages, source=source, row=row_no)
