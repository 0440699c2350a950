"""Uploaded datasets kept in one folder: added only once graft's own loader accepts every row,
listed with what that check found, previewed as the normalised rows training would see.

    root/NAME.EXT           the data file (NAME.EXT is a `safe_name`: it cannot leave root)
    root/.meta/NAME.EXT.json  format, rows, bytes, uploaded (written once, at add)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from graft.data.example import Example
from graft.data.load import load_examples
from graft.data.readers import SUPPORTED
from graft.errors import ConfigError, DataError, DataRowError, NotFoundError
from graft.paths import safe_name

CHUNK = 1 << 20


class DatasetTooLargeError(DataError):
    """An upload over the library's size limit."""


class DatasetExistsError(ConfigError):
    """A dataset of that name is there already (delete it first, or pick another name)."""


class DatasetLibrary:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def add(self, stream: BinaryIO, filename: str, name: str | None = None, max_bytes: int | None = None) -> dict:
        """Store `stream` as dataset `name` (default: `filename`) once every row loads; nothing stays behind otherwise."""
        final = self._new_name(filename, name)
        self.root.mkdir(parents=True, exist_ok=True)
        # staged under root (same filesystem: the final link is atomic), with the final suffix the readers go by
        staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=self.root))
        try:
            tmp = staging / final
            size = copy_upload(stream, tmp, max_bytes)
            loaded = _load(tmp, final)
            meta = {"format": loaded.format, "rows": len(loaded.examples), "bytes": size,
                    "uploaded": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            try:
                os.link(tmp, self.root / final)  # fails if the name was taken meanwhile: never overwrites
            except FileExistsError:
                raise DatasetExistsError(f"dataset '{final}' exists already", hint="delete it first, or pick another name") from None
            self._meta_path(final).parent.mkdir(exist_ok=True)
            self._meta_path(final).write_text(json.dumps(meta))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get(final)

    def list(self) -> list[dict]:
        return [self.get(p.name) for p in sorted(self.root.glob("*"))
                if p.is_file() and not p.is_symlink() and p.suffix.lower() in SUPPORTED]

    def get(self, name: str) -> dict:
        path = self.path(name)
        meta = self._meta(path)
        return {"name": path.name, "path": str(path.resolve()), **meta}

    def preview(self, name: str, limit: int = 20) -> dict:
        """The first `limit` rows as training sees them (chat messages, or text with its label)."""
        path = self.path(name)
        loaded = _load(path, path.name, limit=limit)
        return {"name": path.name, "format": loaded.format, "total": self._meta(path).get("rows"),
                "rows": [_row(e) for e in loaded.examples]}

    def delete(self, name: str) -> None:
        path = self.path(name)
        path.unlink()
        self._meta_path(path.name).unlink(missing_ok=True)

    def path(self, name: str) -> Path:
        """The file of an existing dataset; any name that is not one (or points elsewhere) is not found."""
        try:
            clean = safe_name(name)
        except ValueError:
            clean = ""
        path = self.root / clean
        if clean != name or not path.is_file() or path.is_symlink() or path.suffix.lower() not in SUPPORTED:
            raise NotFoundError(f"no dataset '{name}'", hint="GET /api/datasets lists them")
        return path

    def _new_name(self, filename: str, name: str | None) -> str:
        suffix = Path(filename or "").suffix.lower()
        if suffix not in SUPPORTED:
            raise DataError(f"{filename or 'the upload'}: unsupported file type '{suffix or '(none)'}'",
                            hint=f"supported: {', '.join(SUPPORTED)}")
        try:
            base = safe_name(name or Path(filename).name)
        except ValueError:
            raise ConfigError(f"not a usable dataset name: {name or filename!r}") from None
        return base if base.lower().endswith(suffix) else base + suffix

    def _meta_path(self, name: str) -> Path:
        return self.root / ".meta" / f"{name}.json"

    def _meta(self, path: Path) -> dict:
        meta_path = self._meta_path(path.name)
        if meta_path.is_file():
            return json.loads(meta_path.read_text())
        # a file put there by hand: described by its size alone until someone previews it
        stat = path.stat()
        return {"format": None, "rows": None, "bytes": stat.st_size,
                "uploaded": datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat(timespec="seconds")}


def copy_upload(stream: BinaryIO, dest: Path, max_bytes: int | None, limit: int | None = None) -> int:
    """Copy an uploaded stream to `dest`, at most `max_bytes` of it; returns the size. `limit`: the figure
    the error names, when `max_bytes` is what is left of a limit several files share."""
    size = 0
    with dest.open("wb") as out:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise DatasetTooLargeError(f"{dest.name}: larger than the upload limit of {limit or max_bytes:,} bytes")
            out.write(chunk)
    return size


def _load(path: Path, shown: str, limit: int | None = None):
    """load_examples, with errors naming the dataset rather than the folder it sits in."""
    try:
        return load_examples(str(path), limit=limit)
    except DataRowError as e:
        raise DataRowError(shown, e.row, e.field, e.problem) from None
    except DataError as e:
        raise type(e)(str(e).replace(str(path), shown), e.hint) from None


def _row(e: Example) -> dict:
    if e.messages is not None:
        return {"row": e.row, "messages": e.messages}
    return {"row": e.row, "text": e.text, **({"label": e.label} if e.label is not None else {})}
