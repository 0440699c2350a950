"""Checks shared by the format converters; every failure names the row and the field."""

from __future__ import annotations

from typing import Any

from graft.errors import DataRowError


def describe(value: Any) -> str:
    """The JSON name of a value's type, as a user reading their file would call it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def require_dict(row: Any, source: str, row_no: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataRowError(source, row_no, None, f"expected an object with named fields, got {describe(row)}")
    return row


def get_str(
    row: dict[str, Any],
    key: str,
    source: str,
    row_no: int,
    *,
    required: bool = True,
    allow_empty: bool = False,
    empty_problem: str = "empty",
    field: str | None = None,
) -> str | None:
    """``row[key]`` as a string; None for an absent optional field (null counts as absent)."""
    field = field or key
    value = row.get(key)
    if value is None:
        if required:
            raise DataRowError(source, row_no, field, "missing" if key not in row else "is null")
        return None
    if not isinstance(value, str):
        raise DataRowError(source, row_no, field, f"expected a string, got {describe(value)}")
    if not allow_empty and not value.strip():
        raise DataRowError(source, row_no, field, empty_problem)
    return value


def get_list(row: dict[str, Any], key: str, source: str, row_no: int) -> list[Any]:
    value = row.get(key)
    if value is None:
        raise DataRowError(source, row_no, key, "missing" if key not in row else "is null")
    if not isinstance(value, list):
        raise DataRowError(source, row_no, key, f"expected a list of turns, got {describe(value)}")
    if not value:
        raise DataRowError(source, row_no, key, "empty conversation")
    return value
