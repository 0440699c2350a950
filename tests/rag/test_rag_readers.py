"""Files to documents: each format, non-UTF-8 text, binary and broken files."""

from __future__ import annotations

import json

import pytest
from pdfkit import pdf_bytes

from graft.errors import DataError
from graft.rag.readers import expand, read_file


def test_text_and_markdown(tmp_path):
    (tmp_path / "a.txt").write_text("plain words")
    (tmp_path / "b.md").write_text("# Title\n\nbody")
    [a], [b] = read_file(tmp_path / "a.txt"), read_file(tmp_path / "b.md")
    assert (a.kind, a.text, a.encoding) == ("text", "plain words", "utf-8")
    assert b.kind == "markdown" and b.text.startswith("# Title")


def test_non_utf8_text_is_decoded_not_mangled(tmp_path):
    path = tmp_path / "cafe.txt"
    path.write_bytes(("Le café est très bon et la crème brûlée aussi. " * 30).encode("cp1252"))
    [doc] = read_file(path)
    assert "café" in doc.text and "brûlée" in doc.text
    assert doc.encoding != "utf-8"


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.md"
    path.write_bytes("\ufeff# Heading\n\ntext".encode("utf-8"))
    assert read_file(path)[0].text.startswith("# Heading")


def test_html_keeps_headings_and_drops_scripts(tmp_path):
    path = tmp_path / "page.html"
    path.write_text("<html><head><title>t</title><style>p{}</style></head><body><h1>Install</h1>"
                    "<p>Run the <b>setup</b> script.</p><script>alert('x')</script><h2>Usage</h2><ul><li>one</li>"
                    "<li>two</li></ul></body></html>")
    [doc] = read_file(path)
    assert "# Install" in doc.text and "## Usage" in doc.text
    assert "Run the setup script." in doc.text
    assert "alert" not in doc.text and "p{}" not in doc.text
    assert doc.text.index("one") < doc.text.index("two")


def test_pdf_pages_are_remembered(tmp_path):
    path = tmp_path / "manual.pdf"
    path.write_bytes(pdf_bytes(["The pump needs oil every week.", "The filter is changed every month."]))
    [doc] = read_file(path)
    assert doc.kind == "pdf" and len(doc.pages) == 2
    assert doc.page_at(doc.text.index("filter")) == 2 and doc.page_at(doc.text.index("pump")) == 1


def test_broken_pdf_names_the_file(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not a pdf body")
    with pytest.raises(DataError, match="broken.pdf"):
        read_file(path)


def test_json_records_become_documents_with_rows(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"instruction": "Name a fruit", "output": "Apple"}, {"instruction": "", "output": ""},
                                {"instruction": "Name a color", "output": "Blue"}]))
    docs = read_file(path, "rows.json")
    assert [d.source for d in docs] == ["rows.json#1", "rows.json#3"]  # the empty record is no document
    assert docs[1].text == "instruction: Name a color\n\noutput: Blue"


def test_jsonl_bad_line_is_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "fine"}\n{broken\n')
    with pytest.raises(DataError, match=r"rows.jsonl row 2"):
        read_file(path)


def test_json_that_is_not_a_list(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text('{"a": 1}')
    with pytest.raises(DataError, match="expected a JSON list"):
        read_file(path)


def test_binary_content_is_refused(tmp_path):
    path = tmp_path / "data.txt"
    path.write_bytes(b"\x00\x01\x02binary\x00" * 10)
    with pytest.raises(DataError, match="binary"):
        read_file(path)


def test_expand_folders_skips_hidden_and_reports_unsupported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("a")
    (tmp_path / "docs" / ".hidden.md").write_text("h")
    (tmp_path / "docs" / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "notes.docx").write_bytes(b"PK")
    files, skipped = expand([tmp_path / "docs", tmp_path / "notes.docx"])
    assert [f.name for f in files] == ["a.md"]
    assert len(skipped) == 1 and "notes.docx" in skipped[0].path and ".docx" in skipped[0].reason
    with pytest.raises(DataError, match="missing.md"):
        expand([tmp_path / "missing.md"])
