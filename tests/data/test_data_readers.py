"""File readers: row numbering, each file type, and errors for missing/unsupported/broken files."""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graft.data import load_examples, read_rows
from graft.errors import DataError, DataRowError, OfflineError


def test_jsonl_numbers_rows_by_line_and_counts_blank_lines(write):
    p = write("d.jsonl", '{"text": "a"}\n\n{"text": "b"}\n{"text": oops}\n')
    rows = read_rows(str(p))
    assert next(rows) == (1, {"text": "a"})
    assert next(rows) == (3, {"text": "b"})  # line 2 is blank
    with pytest.raises(DataRowError) as info:
        next(rows)
    assert info.value.row == 4
    assert str(p) in str(info.value) and "row 4" in str(info.value) and "not valid JSON" in str(info.value)


def test_json_array_rows_are_indexed_from_one(write):
    p = write("d.json", [{"text": "a"}, {"text": "b"}])
    assert list(read_rows(str(p))) == [(1, {"text": "a"}), (2, {"text": "b"})]


def test_json_lines_saved_as_json_still_read(write):
    p = write("d.json", '{"text": "a"}\n{"text": "b"}\n')
    assert [r for _, r in read_rows(str(p))] == [{"text": "a"}, {"text": "b"}]


def test_invalid_json_reports_position(write):
    p = write("d.json", '[{"text": "a"},\n {"text": }]')
    with pytest.raises(DataError) as info:
        list(read_rows(str(p)))
    assert str(p) in str(info.value) and "line 2, column" in str(info.value)


def test_json_top_level_must_be_an_array(write):
    p = write("d.json", {"data": [{"text": "a"}]})
    with pytest.raises(DataError, match="JSON array"):
        list(read_rows(str(p)))


def test_csv_with_quotes_and_row_numbers(write):
    p = write("d.csv", 'instruction,input,output\n"Say ""hi""",,"hi,\nthere"\nQ2,,A2\n')
    assert list(read_rows(str(p))) == [
        (1, {"instruction": 'Say "hi"', "input": "", "output": "hi,\nthere"}),
        (2, {"instruction": "Q2", "input": "", "output": "A2"}),
    ]
    assert load_examples(str(p)).format == "alpaca"


def test_csv_row_with_wrong_column_count(write):
    p = write("d.csv", "text,label\ngood,1\nbad,0,extra\n")
    with pytest.raises(DataRowError) as info:
        list(read_rows(str(p)))
    assert info.value.row == 2 and "3 values but the header has 2 columns" in str(info.value)


def test_tsv_keeps_quotes_literal(write):
    p = write("d.tsv", 'text\tlabel\n"quoted" start\tpos\nplain\tneg\n')
    assert [r for _, r in read_rows(str(p))] == [{"text": '"quoted" start', "label": "pos"},
                                                  {"text": "plain", "label": "neg"}]


def test_parquet(tmp_path):
    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["x", "y", "z"], "label": [0, 1, 1]}), p)
    data = load_examples(str(p))
    assert data.format == "classification"
    assert [(e.row, e.text, e.label) for e in data.examples] == [(1, "x", "0"), (2, "y", "1"), (3, "z", "1")]


def test_broken_parquet(write):
    p = write("d.parquet", "not parquet")
    with pytest.raises(DataError, match="Parquet"):
        list(read_rows(str(p)))


def test_txt_is_one_text_row(write):
    p = write("d.txt", "line one\nline two\n")
    assert list(read_rows(str(p))) == [(1, {"text": "line one\nline two\n"})]
    data = load_examples(str(p))
    assert (data.format, len(data.examples), data.examples[0].kind) == ("text", 1, "text")


def test_missing_file_names_the_path(tmp_path):
    path = str(tmp_path / "nope.jsonl")
    with pytest.raises(DataError) as info:
        list(read_rows(path))
    assert "not found" in str(info.value) and path in str(info.value)


def test_unsupported_extension_lists_supported(write):
    p = write("d.xml", "<a/>")
    with pytest.raises(DataError) as info:
        list(read_rows(str(p)))
    assert "'.xml'" in str(info.value) and ".jsonl" in info.value.hint and ".parquet" in info.value.hint


def test_hub_id_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(OfflineError) as info:
        load_examples("some-org/some-dataset")
    assert time.monotonic() - start < 2
    assert "some-org/some-dataset" in str(info.value) and "HF_HUB_OFFLINE" in str(info.value)


def test_hub_id_unreachable_fails_fast(monkeypatch):
    import graft.data.readers as readers

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    # A port nobody listens on: the connection is refused at once, like a machine without network.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(OfflineError, match="cannot be reached"):
        list(readers.read_rows("some-org/some-dataset"))
    assert time.monotonic() - start < 5
