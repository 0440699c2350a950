"""Read raw rows from a local file or a Hugging Face Hub dataset, numbered for error messages.

Row numbers are 1-based: the array index for .json, the line number for .jsonl, the data row
after the header for .csv/.tsv, the record index for .parquet and Hub datasets; a .txt file is
one row.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from graft.errors import DataError, DataRowError, OfflineError
from graft.network import CONNECT_TIMEOUT_S, hub_reachable, offline_by_env

SUPPORTED = (".json", ".jsonl", ".csv", ".tsv", ".parquet", ".txt")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

# A row is either the parsed value or the DataRowError that reading it produced, so that
# load_examples can skip unreadable lines as well as malformed ones.
RawRow = tuple[int, Any]


def read_rows(path: str, split: str = "train") -> Iterator[RawRow]:
    """Yield ``(row_number, raw_row)``; the first unreadable row raises its DataRowError."""
    for row_no, row in iter_rows(path, split):
        if isinstance(row, DataRowError):
            raise row
        yield row_no, row


def iter_rows(path: str, split: str = "train") -> Iterator[RawRow]:
    """Like read_rows, but an unreadable row is yielded as its DataRowError instead of raised."""
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir():
        raise DataError(f"{path} is a folder; give a data file ({', '.join(SUPPORTED)}) or a Hub dataset id")
    if p.is_file():
        readers = {".json": _read_json, ".jsonl": _read_jsonl, ".csv": _read_csv, ".tsv": _read_csv,
                   ".parquet": _read_parquet, ".txt": _read_txt}
        if suffix not in readers:
            raise DataError(
                f"{path}: unsupported file type '{suffix or '(none)'}'",
                hint=f"supported: {', '.join(SUPPORTED)}, or a Hugging Face Hub dataset id (org/name)",
            )
        return readers[suffix](p)
    if suffix not in SUPPORTED and _HUB_ID.match(path):
        return _read_hub(path, split)
    raise DataError(f"data file not found: {path}")


def _open_text(p: Path):
    # utf-8-sig drops the byte-order mark that some Windows editors write.
    return p.open(encoding="utf-8-sig", newline="")


def _read_json(p: Path) -> Iterator[RawRow]:
    try:
        with _open_text(p) as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and "\n" in text.strip():
            # Several values one after another: JSON Lines saved as .json, a common mix-up.
            return _read_jsonl(p)
        raise DataError(f"{p}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(data, list):
        raise DataError(f"{p}: expected a JSON array of rows ([{{...}}, ...]) at the top level, "
                        f"found {type(data).__name__}")
    return iter(enumerate(data, start=1))


def _read_jsonl(p: Path) -> Iterator[RawRow]:
    try:
        with _open_text(p) as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield line_no, json.loads(line)
                except json.JSONDecodeError as e:
                    yield line_no, DataRowError(str(p), line_no, None,
                                                f"line is not valid JSON (column {e.colno}: {e.msg})")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _read_csv(p: Path) -> Iterator[RawRow]:
    tsv = p.suffix.lower() == ".tsv"
    # TSV files rarely quote; with quoting on, one stray leading '"' swallows rows silently.
    kwargs: dict[str, Any] = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if tsv else {}
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long documents in one cell are fine
    try:
        with _open_text(p) as f:
            reader = csv.reader(f, **kwargs)
            header = next(reader, None)
            if not header:
                raise DataError(f"{p}: empty file; expected a header row")
            header = [h.strip() for h in header]
            for row_no, values in enumerate(reader, start=1):
                if not values:
                    continue
                if len(values) != len(header):
                    problem = f"has {len(values)} values but the header has {len(header)} columns"
                    yield row_no, DataRowError(str(p), row_no, None, problem)
                    continue
                yield row_no, dict(zip(header, values))
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DataError(f"{p}: cannot parse as {'TSV' if tsv else 'CSV'}: {e}") from None


def _read_parquet(p: Path) -> Iterator[RawRow]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{p}: not a readable Parquet file: {e}") from None
    row_no = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            row_no += 1
            yield row_no, row


def _read_txt(p: Path) -> Iterator[RawRow]:
    try:
        yield 1, {"text": p.read_text(encoding="utf-8-sig")}
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None


# -- Hugging Face Hub ------------------------------------------------------------------------------


def _read_hub(dataset_id: str, split: str) -> Iterator[RawRow]:
    if offline_by_env("HF_DATASETS_OFFLINE"):
        raise OfflineError(
            f"'{dataset_id}' is not a local file, and as a Hub dataset id it needs the network, "
            "but HF_HUB_OFFLINE is set",
            hint="download the dataset to a local file (JSON/JSONL/CSV/Parquet) and pass its path",
        )
    if not hub_reachable():
        raise OfflineError(
            f"'{dataset_id}' is not a local file, and the Hugging Face Hub cannot be reached "
            f"to load it as a dataset id (no connection within {CONNECT_TIMEOUT_S:.0f} s)",
            hint="check the path, or the network connection",
        )
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, split=split)
    except datasets.exceptions.DatasetNotFoundError:
        raise DataError(f"'{dataset_id}': no such local file and no such Hub dataset") from None
    except ValueError as e:  # datasets reports an unknown split as ValueError
        raise DataError(f"Hub dataset '{dataset_id}', split '{split}': {e}") from None
    except ConnectionError as e:
        raise OfflineError(f"Hub dataset '{dataset_id}': lost the connection: {e}") from None
    label = ds.features.get("label") if hasattr(ds, "features") else None
    names = getattr(label, "names", None)  # a ClassLabel: store the readable name, not its index
    return _hub_rows(ds, names)


def _hub_rows(ds: Any, label_names: list[str] | None) -> Iterator[RawRow]:
    for row_no, row in enumerate(ds, start=1):
        if label_names and isinstance(row.get("label"), int) and 0 <= row["label"] < len(label_names):
            row = {**row, "label": label_names[row["label"]]}
        yield row_no, row
