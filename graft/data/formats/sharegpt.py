"""ShareGPT: {"conversations": [{"from", "value"}, ...], "system"?, "tools"?}.

Tool-calling data (Glaive style) uses ``function_call`` turns, which the model writes, and
``observation`` turns, which hold the tool's answer. Not every chat template has a tool role,
so observations become user turns; the tool schemas go into the system message as text.
"""

from __future__ import annotations

import json
from typing import Any

from graft.data.example import Example
from graft.errors import DataRowError

from ._chat import build_messages, parse_turns
from ._common import describe, get_str, require_dict

NAME = "sharegpt"
REQUIRED = "conversations: [{from, value}, ...]; optional system, tools"

ROLES = {
    "human": "user", "user": "user", "observation": "user",
    "gpt": "assistant", "assistant": "assistant", "model": "assistant", "function_call": "assistant",
    "system": "system",
}


def detect(row: Any) -> bool:
    return isinstance(row, dict) and isinstance(row.get("conversations"), list)


def convert(row: Any, source: str, row_no: int, system_prompt: str | None = None) -> Example:
    row = require_dict(row, source, row_no)
    turns = parse_turns(row, "conversations", "from", "value", ROLES, source, row_no)
    system = get_str(row, "system", source, row_no, required=False, allow_empty=True)
    messages = build_messages(turns, source, row_no, "conversations", system=system,
                              default_system=system_prompt, system_suffix=_tools_text(row, source, row_no))
    return Example(messages=messages, source=source, row=row_no)


def _tools_text(row: dict[str, Any], source: str, row_no: int) -> str | None:
    tools = row.get("tools")
    if tools is None:
        return None
    if isinstance(tools, list):
        tools = json.dumps(tools, ensure_ascii=False) if tools else ""
    if not isinstance(tools, str):
        raise DataRowError(source, row_no, "tools", f"expected a string or a list, got {describe(tools)}")
    if tools.strip() in {"", "[]"}:
        return None
    return f"You can call these functions (JSON schemas):\n{tools.strip()}"
