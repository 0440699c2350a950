"""Turn a list of (role, content) turns into validated chat messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graft.errors import DataRowError

from ._common import describe, get_list, get_str


@dataclass
class Turn:
    role: str  # already mapped to system / user / assistant
    content: Any
    role_field: str  # e.g. "conversations[2].from", for error messages
    content_field: str


def build_messages(
    turns: list[Turn],
    source: str,
    row_no: int,
    list_field: str,
    *,
    system: str | None = None,
    default_system: str | None = None,
    system_suffix: str | None = None,
) -> list[dict[str, str]]:
    """Check the turns and return messages.

    The system message joins the row's own ``system`` and a leading system turn; only when the
    row has neither does ``default_system`` apply. ``system_suffix`` (e.g. tool schemas) is
    appended either way.
    """
    messages: list[dict[str, str]] = []
    system_parts = [system] if system and system.strip() else []
    for i, t in enumerate(turns):
        if not isinstance(t.content, str):
            raise DataRowError(source, row_no, t.content_field, f"expected a string, got {describe(t.content)}")
        if t.role == "system":
            # Chat templates put the system prompt first; one later in the chat is usually a mistake.
            if i != 0:
                raise DataRowError(source, row_no, t.role_field, "a system turn is only allowed as the first turn")
            if t.content.strip():
                system_parts.append(t.content)
            continue
        if not t.content.strip():
            raise DataRowError(source, row_no, t.content_field,
                               "empty response" if t.role == "assistant" else "empty message")
        messages.append({"role": t.role, "content": t.content})
    roles = [m["role"] for m in messages]
    if not roles:
        raise DataRowError(source, row_no, list_field, "empty conversation: only a system turn")
    if "assistant" not in roles:
        raise DataRowError(source, row_no, list_field, "no assistant turn, so there is no response to learn from")
    if roles[-1] != "assistant":
        raise DataRowError(source, row_no, list_field,
                           f"ends with a {roles[-1]} turn; the last turn must be the assistant's")
    if not system_parts and default_system and default_system.strip():
        system_parts.append(default_system)
    if system_suffix:
        system_parts.append(system_suffix)
    if system_parts:
        messages.insert(0, {"role": "system", "content": "\n\n".join(system_parts)})
    return messages


def parse_turns(row: dict[str, Any], list_key: str, role_key: str, content_key: str,
                roles: dict[str, str], source: str, row_no: int) -> list[Turn]:
    """Read `row[list_key]` as turns of {role_key, content_key}, mapping speaker names through `roles`."""
    turns = []
    for i, turn in enumerate(get_list(row, list_key, source, row_no)):
        where = f"{list_key}[{i}]"
        if not isinstance(turn, dict):
            raise DataRowError(source, row_no, where,
                               f"expected an object with '{role_key}' and '{content_key}', got {describe(turn)}")
        speaker = get_str(turn, role_key, source, row_no, field=f"{where}.{role_key}")
        role = roles.get(speaker.strip().lower())
        if role is None:
            raise DataRowError(source, row_no, f"{where}.{role_key}",
                               f"unknown role '{speaker}'; expected one of {', '.join(roles)}")
        if content_key not in turn:
            raise DataRowError(source, row_no, f"{where}.{content_key}", "missing")
        turns.append(Turn(role, turn[content_key], f"{where}.{role_key}", f"{where}.{content_key}"))
    return turns
