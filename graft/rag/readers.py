"""Files to documents: plain text, Markdown, HTML, PDF, and JSON/JSONL record collections.

A document keeps its structure where the format has one: Markdown headings stay as they are, HTML
headings become Markdown headings, PDF pages are remembered (each page's character range) so a
chunk can cite its page. Each JSON/JSONL record becomes a document of its own, `FILE#ROW`.

Text that is not UTF-8 is decoded by charset detection (charset_normalizer), falling back to
Latin-1, which cannot fail; the encoding used is kept on the document. A file that looks binary
(NUL bytes) or cannot be parsed is skipped with the reason, never a crash halfway through an index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from graft.errors import DataError, DataRowError

TEXT = {".txt", ".text", ".rst", ".log"}
MARKDOWN = {".md", ".markdown"}
HTML = {".html", ".htm", ".xhtml"}
PDF = {".pdf"}
RECORDS = {".json", ".jsonl"}
SUPPORTED = TEXT | MARKDOWN | HTML | PDF | RECORDS


@dataclass
class Document:
    source: str  # how chunks cite it: a path, or PATH#ROW for a record
    text: str
    kind: str  # text | markdown | html | pdf | record
    encoding: str | None = None
    pages: list[tuple[int, int]] = field(default_factory=list)  # PDF: [start, end) character range of each page

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding character `offset` (PDF only)."""
        for number, (start, end) in enumerate(self.pages, 1):
            if start <= offset < end:
                return number
        return len(self.pages) if self.pages else None


@dataclass
class Skipped:
    path: str
    reason: str


def expand(paths: Iterable[str | Path]) -> tuple[list[Path], list[Skipped]]:
    """Named files and the supported files under named folders (sorted, hidden ones left out).

    A named file of an unsupported type is skipped with the reason; a missing path is an error.
    """
    files, skipped = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                rel = child.relative_to(path).parts
                if child.is_file() and child.suffix.lower() in SUPPORTED and not any(p.startswith(".") for p in rel):
                    files.append(child)
        elif path.is_file():
            if path.suffix.lower() in SUPPORTED:
                files.append(path)
            else:
                skipped.append(Skipped(str(path), f"unsupported file type {path.suffix or '(none)'}; "
                                                  f"graft reads {', '.join(sorted(SUPPORTED))}"))
        else:
            raise DataError(f"{path}: no such file or folder")
    return files, skipped


def source_name(path: Path) -> str:
    """A file's name in citations: relative to the working folder when under it, else absolute."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def read_file(path: Path, source: str | None = None) -> list[Document]:
    """The documents in one file (one, or one per record). Raises DataError naming the file when it
    cannot be read as its type says."""
    source = source or source_name(path)
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if suffix in PDF:
        return [_pdf(path, data, source)]
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{path}: looks binary (NUL bytes), not {suffix[1:]} text")
    text, encoding = decode(data)
    if suffix in HTML:
        return [Document(source, html_to_text(text), "html", encoding)]
    if suffix in RECORDS:
        return list(_records(path, text, source, encoding))
    return [Document(source, text, "markdown" if suffix in MARKDOWN else "text", encoding)]


def decode(data: bytes) -> tuple[str, str]:
    """Bytes to text and the encoding used: UTF-8 (with or without BOM) first, then detection."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is not None:
        # detection often cannot tell the Windows code pages apart; on a tie take the Western one,
        # the most common legacy encoding of English and Western European text
        tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
        if any("cp1252" in m.could_be_from_charset for m in tied):
            return data.decode("cp1252", errors="replace"), "cp1252"
        return str(best), best.encoding
    return data.decode("latin-1"), "latin-1"


def html_to_text(html: str) -> str:
    """Visible text of an HTML page, headings as Markdown headings and blocks as paragraphs."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {' '.join(h.get_text(' ').split())}\n\n")
    for block in soup.find_all(["p", "li", "tr", "pre", "blockquote", "div", "section", "article", "br"]):
        block.insert_after("\n\n" if block.name != "br" else "\n")
    text = soup.get_text()
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r"\n\s*\n\s*(\n\s*)*", "\n\n", text).strip()


def _pdf(path: Path, data: bytes, source: str) -> Document:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        parts, pages, at = [], [], 0
        for page in reader.pages:
            text = (page.extract_text() or "").strip()
            parts.append(text)
            pages.append((at, at + len(text) + 2))
            at += len(text) + 2
    except (PdfReadError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a readable PDF ({e})") from e
    return Document(source, "\n\n".join(parts), "pdf", None, pages)


def _records(path: Path, text: str, source: str, encoding: str) -> Iterator[Document]:
    for n, row in numbered_records(path, text):
        body = record_text(row)
        if body.strip():
            yield Document(f"{source}#{n}", body, "record", encoding)


def numbered_records(path: Path, text: str) -> list[tuple[int, object]]:
    """(row, record) of a .jsonl (row = line number) or a .json list (row = position from 1): the
    numbering of FILE#ROW sources."""
    if path.suffix.lower() == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataRowError(str(path), n, None, f"not JSON ({e.msg})") from e
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not JSON ({e.msg} at line {e.lineno})", hint="records are a .json list or "
                        ".jsonl lines") from e
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, not a {type(data).__name__}")
    return list(enumerate(data, 1))


def record_text(row) -> str:
    """A record's string fields, one paragraph each (`field: value`); a bare string is itself."""
    if isinstance(row, str):
        return row
    if isinstance(row, dict):
        return "\n\n".join(f"{k}: {v}" if not isinstance(v, (dict, list)) else f"{k}: {json.dumps(v, ensure_ascii=False)}"
                           for k, v in row.items() if v not in (None, ""))
    return json.dumps(row, ensure_ascii=False)
