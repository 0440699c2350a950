"""Helpers for the data tests: write small files and check row errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graft.errors import DataRowError
from graft.data import load_examples


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write(name, rows) -> path: a str is written as is, else .jsonl one row a line, else JSON."""

    def _write(name: str, rows: Any) -> Path:
        p = tmp_path / name
        if isinstance(rows, str):
            p.write_text(rows)
        elif name.endswith(".jsonl"):
            p.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            p.write_text(json.dumps(rows))
        return p

    return _write


def _row_error(path: Path, **kwargs: Any) -> DataRowError:
    with pytest.raises(DataRowError) as info:
        load_examples(str(path), **kwargs)
    return info.value


def _assert_names(err: DataRowError, path: Path, row: int, field: str | None, problem: str) -> None:
    msg = str(err)
    assert str(path) in msg
    assert f"row {row}" in msg and err.row == row
    if field is not None:
        assert f"field '{field}'" in msg and err.field == field
    assert problem in msg, msg


@pytest.fixture
def row_error() -> Callable[..., DataRowError]:
    """row_error(path, **load_kwargs): load and return the DataRowError it must raise."""
    return _row_error


@pytest.fixture
def assert_names() -> Callable[..., None]:
    """assert_names(err, path, row, field, problem): the message lets the user find the row."""
    return _assert_names
