"""Documents to chunks, by structure first and size second.

A Markdown (or HTML-made) document is cut at its headings into sections; each chunk remembers its
section's heading path ("Export > GGUF"), which is embedded with it. Inside a section, a chunk takes
as much text as fits in `size` characters and ends at the best boundary in reach: a blank line,
else a line end, else a sentence end, else a space, else (a huge unbroken line) exactly at `size`.
The next chunk starts up to `overlap` characters earlier, at a word boundary, so a passage split by
a boundary is still whole in one of the two. Chunks are spans of the document text (start/end),
so a PDF chunk knows its page.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from graft.errors import ConfigError
from graft.rag.readers import Document

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?\s")


@dataclass
class Chunk:
    source: str
    title: str  # heading path, "" when the document has none
    text: str
    start: int  # [start, end) in the document's text
    end: int
    page: int | None = None
    id: int = -1  # given by the knowledge base
    line: int | None = None  # 1-based line of the document where the chunk starts

    def embedding_text(self) -> str:
        """What is embedded: the text, led by its heading path when the text does not start with it."""
        last = self.title.rsplit(" > ", 1)[-1]
        if not self.title or self.text.lstrip("# ").startswith(last):
            return self.text
        return f"{self.title}\n\n{self.text}"

    def to_dict(self) -> dict:
        return asdict(self)


def check_sizes(size: int, overlap: int) -> None:
    if size < 50:
        raise ConfigError(f"chunk_size {size} is too small: at least 50 characters")
    if not 0 <= overlap < size // 2:
        raise ConfigError(f"overlap {overlap} must be at least 0 and less than half of chunk_size ({size})")


def chunk_document(doc: Document, size: int = 800, overlap: int = 120) -> list[Chunk]:
    check_sizes(size, overlap)
    text = doc.text
    chunks, line, counted = [], 1, 0
    for title, start, end in sections(text, structured=doc.kind in {"markdown", "html"}):
        for s, e in _spans(text, start, end, size, overlap):
            body = text[s:e].strip()
            if body:
                first = s + (len(text[s:e]) - len(text[s:e].lstrip()))
                line += text.count("\n", counted, first)  # spans only move forward
                counted = first
                chunks.append(Chunk(doc.source, title, body, s, e, doc.page_at(s) if doc.pages else None, line=line))
    return chunks


def sections(text: str, structured: bool) -> list[tuple[str, int, int]]:
    """(heading path, start, end) of each section; the heading line opens its section."""
    if not structured:
        return [("", 0, len(text))]
    out, path, start, title, fenced, at = [], [], 0, "", False, 0
    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        m = None if fenced else _HEADING.match(line.rstrip("\r\n"))
        if m:
            if _has_body(text, start, at, title):
                out.append((title, start, at))
            level = len(m.group(1))
            path = [p for p in path if p[0] < level] + [(level, m.group(2).strip())]
            title, start = " > ".join(p[1] for p in path), at
        at += len(line)
    if _has_body(text, start, len(text), title):
        out.append((title, start, len(text)))
    return out


def _has_body(text: str, start: int, end: int, title: str) -> bool:
    """Whether a section holds more than its heading (a bare heading lives on in its subsections' titles)."""
    body = text[start:end].strip()
    return bool(body) and not (title and _HEADING.match(body) and "\n" not in body)


def _spans(text: str, start: int, end: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[begin, cut) spans of at most `size` characters, each after the first reaching back `overlap`."""
    spans, pos = [], _skip_space(text, start, end)
    while pos < end:
        begin = pos
        if spans and overlap:
            begin = max(spans[-1][0] + 1, pos - overlap)
            # start on a line if one starts in reach, else on a word, never inside one
            brk = text.find("\n", begin, pos)
            brk = brk if brk >= 0 else text.find(" ", begin, pos)
            begin = brk + 1 if 0 <= brk < pos else pos
        limit = begin + size
        # never a tiny chunk for the sake of a nice boundary, and always past pos
        cut = end if end <= limit else _best_cut(text, max(pos + 1, begin + size // 3), limit)
        spans.append((begin, cut))
        pos = _skip_space(text, cut, end)
    return spans


def _best_cut(text: str, floor: int, limit: int) -> int:
    for sep in ("\n\n", "\n"):
        i = text.rfind(sep, floor, limit)
        if i > 0:
            return i + len(sep)
    ends = [m.end() for m in _SENTENCE_END.finditer(text, floor, limit)]
    if ends:
        return ends[-1]
    i = text.rfind(" ", floor, limit)
    return i + 1 if i > 0 else limit


def _skip_space(text: str, pos: int, end: int) -> int:
    while pos < end and text[pos].isspace():
        pos += 1
    return pos
