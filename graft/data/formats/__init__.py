"""The row formats graft reads, and auto-detection between them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from graft.data.example import Example
from graft.errors import DataError

from . import alpaca, classification, messages, sharegpt, text

DETECT_SAMPLE = 20


@dataclass(frozen=True)
class Format:
    name: str
    required: str  # the keys a row needs, for error messages
    detect: Callable[[Any], bool]
    convert: Callable[..., Example]


def _from_module(m: ModuleType) -> Format:
    return Format(m.NAME, m.REQUIRED, m.detect, m.convert)


# In detection priority order: a classification row also has "text", an alpaca row may too.
FORMATS: dict[str, Format] = {
    m.NAME: _from_module(m) for m in (messages, sharegpt, alpaca, classification, text)
}


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise DataError(f"unknown data format '{name}'; choose one of: auto, {', '.join(FORMATS)}") from None


def detect_format(rows_sample: list[Any], source: str) -> str:
    """Pick the format matching most of the first rows; ties go to the higher-priority format."""
    sample = rows_sample[:DETECT_SAMPLE]
    counts = {name: sum(1 for r in sample if f.detect(r)) for name, f in FORMATS.items()}
    best = max(FORMATS, key=lambda name: counts[name])  # max keeps the first of equal counts
    if counts[best]:
        return best
    keys = sorted({str(k) for r in sample if isinstance(r, dict) for k in r})
    shown = ", ".join(keys[:20]) + (f", ... ({len(keys)} in all)" if len(keys) > 20 else "")
    found = f"keys found: {shown}" if keys else "no rows with named fields found"
    expected = " | ".join(f"{f.name} <- {f.required}" for f in FORMATS.values())
    raise DataError(
        f"{source}: cannot tell the data format from the first {len(sample)} rows ({found}). "
        f"Known formats and the keys they need: {expected}. "
        "Rename the fields, or pass --format to name the format",
        hint=f"with --format {{{','.join(FORMATS)}}} the first row that does not fit is reported",
    )


__all__ = ["FORMATS", "Format", "detect_format", "get_format"]
