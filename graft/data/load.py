"""Read a data source into validated Examples, before any model or training is set up."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from graft.data.example import Example
from graft.data.formats import DETECT_SAMPLE, detect_format, get_format
from graft.data.readers import iter_rows
from graft.errors import DataError, DataRowError


@dataclass
class LoadedData:
    examples: list[Example]
    format: str
    source: str
    skipped: list[DataRowError] = field(default_factory=list)
    rows_read: int = 0


def load_examples(
    path: str,
    format: str = "auto",
    split: str = "train",
    skip_bad_rows: bool = False,
    limit: int | None = None,
    system_prompt: str | None = None,
) -> LoadedData:
    """Read and check every row of ``path`` (a file or a Hub dataset id).

    The first malformed row raises its DataRowError, unless ``skip_bad_rows``: then bad rows
    are collected in ``skipped``. ``limit`` stops after that many valid examples.
    """
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}")
    source = str(path)
    rows = iter_rows(source, split)
    fmt = None if format == "auto" else get_format(format)
    head: list[tuple[int, Any]] = []
    if fmt is None:
        # Sample readable rows only; unreadable ones stay in `head` to be reported in order.
        sample: list[Any] = []
        for item in rows:
            head.append(item)
            if not isinstance(item[1], DataRowError):
                sample.append(item[1])
                if len(sample) >= DETECT_SAMPLE:
                    break
        if sample:
            fmt = get_format(detect_format(sample, source))

    examples: list[Example] = []
    skipped: list[DataRowError] = []
    rows_read = 0
    for row_no, row in chain(head, rows):
        rows_read += 1
        try:
            if isinstance(row, DataRowError):
                raise row
            assert fmt is not None  # None only when no row at all was readable
            examples.append(fmt.convert(row, source, row_no, system_prompt=system_prompt))
        except DataRowError as e:
            if not skip_bad_rows:
                raise
            skipped.append(e)
        if limit is not None and len(examples) >= limit:
            break

    if not examples:
        if rows_read == 0:
            raise DataError(f"{source}: no rows to read")
        raise DataError(f"{source}: none of the {rows_read} rows is usable; first problem: {skipped[0]}")
    assert fmt is not None
    return LoadedData(examples, fmt.name, source, skipped, rows_read)
