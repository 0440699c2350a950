"""Chunking: structure first, size limits always, overlap, and the edge cases of real files."""

from __future__ import annotations

import pytest

from graft.errors import ConfigError
from graft.rag.chunking import chunk_document
from graft.rag.readers import Document


def _doc(text, kind="markdown"):
    return Document("doc.md", text, kind)


def test_empty_and_blank_documents_have_no_chunks():
    assert chunk_document(_doc("")) == []
    assert chunk_document(_doc(" \n\n\t \n")) == []


def test_headings_become_titles_with_their_path():
    text = "# Guide\n\nintro\n\n## Install\n\npip it\n\n### On Linux\n\napt it\n\n## Use\n\nrun it\n"
    chunks = chunk_document(_doc(text), size=200, overlap=0)
    assert [(c.title, c.text.splitlines()[-1]) for c in chunks] == [
        ("Guide", "intro"), ("Guide > Install", "pip it"), ("Guide > Install > On Linux", "apt it"),
        ("Guide > Use", "run it")]


def test_hash_lines_inside_code_fences_are_not_headings():
    text = "# Real\n\n```bash\n# a shell comment\nls\n```\n\nafter\n"
    [chunk] = chunk_document(_doc(text), size=500, overlap=0)
    assert chunk.title == "Real" and "# a shell comment" in chunk.text


def test_plain_text_has_no_structure():
    [chunk] = chunk_document(_doc("# not a heading in a .txt\n\nbody", kind="text"))
    assert chunk.title == ""


def test_every_chunk_respects_the_size_and_the_text_is_covered():
    words = [f"word{i}" for i in range(3000)]
    text = " ".join(words)
    chunks = chunk_document(_doc(text, "text"), size=300, overlap=50)
    assert all(len(c.text) <= 300 for c in chunks)
    seen = set(" ".join(c.text for c in chunks).split())
    assert seen == set(words)  # nothing lost
    assert all(not c.text.startswith(("ord", "rd")) for c in chunks)  # chunks start on a word


def test_a_huge_line_without_spaces_is_cut_at_the_size():
    text = "x" * 100_000
    chunks = chunk_document(_doc(text, "text"), size=1000, overlap=0)
    assert len(chunks) == 100 and all(len(c.text) == 1000 for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_a_huge_line_with_overlap_still_progresses():
    chunks = chunk_document(_doc("y" * 20_000, "text"), size=500, overlap=100)
    assert all(len(c.text) <= 500 for c in chunks)
    assert chunks[-1].end == 20_000 and len(chunks) < 60


def test_neighbours_overlap_and_paragraph_boundaries_are_preferred():
    paragraphs = [f"Paragraph {i} says something about topic {i}. " * 3 for i in range(20)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    chunks = chunk_document(_doc(text, "text"), size=400, overlap=80)
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end  # overlap
        assert b.start > a.start
    assert sum(c.text.endswith(".") for c in chunks) >= len(chunks) - 1  # cut at paragraph/sentence ends


def test_spans_and_lines_point_into_the_document():
    text = "# A\n\n" + "alpha beta gamma.\n" * 200
    lines = text.splitlines()
    for c in chunk_document(_doc(text), size=250, overlap=40):
        assert text[c.start:c.end].strip() == c.text
        assert lines[c.line - 1] == c.text.splitlines()[0]  # overlaps start on a line when one is in reach


def test_embedding_text_carries_the_heading_path():
    text = "# Export\n\n## GGUF\n\n" + "quantised files for llama.cpp. " * 40
    chunks = chunk_document(_doc(text), size=300, overlap=0)
    assert chunks[0].embedding_text() == chunks[0].text  # starts with its own heading already
    assert chunks[0].title == "Export > GGUF"  # the bare "# Export" section is no chunk of its own
    assert chunks[1].embedding_text().startswith("Export > GGUF\n\n")


@pytest.mark.parametrize("size,overlap", [(10, 0), (400, 200), (400, -1)])
def test_bad_sizes_are_config_errors(size, overlap):
    with pytest.raises(ConfigError):
        chunk_document(_doc("text"), size=size, overlap=overlap)
