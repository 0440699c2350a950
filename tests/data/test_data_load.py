"""load_examples: auto-detection, strict vs skip-bad-rows, limit, explicit formats."""

from __future__ import annotations

import pytest

from graft.data import detect_format, load_examples
from graft.errors import DataError, DataRowError

ALPACA = {"instruction": "Q", "input": "", "output": "A"}
SHAREGPT = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}
MESSAGES = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}


@pytest.mark.parametrize(
    "row, expected",
    [
        (MESSAGES, "messages"),
        (SHAREGPT, "sharegpt"),
        (ALPACA, "alpaca"),
        ({**ALPACA, "text": "### Instruction: Q"}, "alpaca"),  # alpaca dumps often carry a "text" copy
        ({"text": "x", "label": 1}, "classification"),
        ({"sentence": "x", "label": 1}, "classification"),
        ({"text": "x"}, "text"),
    ],
)
def test_detect_format(row, expected):
    assert detect_format([row] * 3, "f.json") == expected


def test_detect_follows_the_majority_of_the_sample():
    rows = [{"text": "a"}] * 5 + [{"text": "b", "label": 1}]
    assert detect_format(rows, "f.json") == "text"


def test_detect_failure_lists_keys_formats_and_option(write):
    p = write("odd.json", [{"question": "Q", "answer": "A"}])
    with pytest.raises(DataError) as info:
        load_examples(str(p))
    msg = str(info.value)
    assert str(p) in msg and "question, answer" not in msg and "answer, question" in msg
    assert "alpaca <- instruction, output" in msg and "sharegpt <- conversations" in msg and "--format" in msg


def test_first_bad_row_raises_without_skip(write):
    p = write("a.jsonl", [ALPACA, {"instruction": "Q", "output": ""}, ALPACA, {"instruction": "Q"}])
    with pytest.raises(DataRowError) as info:
        load_examples(str(p))
    assert (info.value.row, info.value.field) == (2, "output")


def test_skip_bad_rows_counts_them(write):
    p = write("a.jsonl", [ALPACA, {"instruction": "Q", "output": ""}, ALPACA, {"instruction": "Q"}, ALPACA])
    data = load_examples(str(p), skip_bad_rows=True)
    assert (len(data.examples), data.rows_read, data.format) == (3, 5, "alpaca")
    assert [(e.row, e.field) for e in data.skipped] == [(2, "output"), (4, "output")]
    assert [e.row for e in data.examples] == [1, 3, 5]


def test_skip_bad_rows_includes_unparsable_lines(write):
    p = write("a.jsonl", '{"text": "a"}\n{broken\n{"text": "c"}\n')
    data = load_examples(str(p), skip_bad_rows=True)
    assert [e.text for e in data.examples] == ["a", "c"]
    assert [e.row for e in data.skipped] == [2]


def test_all_rows_bad_is_a_data_error(write):
    p = write("a.jsonl", [{"instruction": "Q", "output": ""}] * 3)
    with pytest.raises(DataError) as info:
        load_examples(str(p), skip_bad_rows=True)
    assert not isinstance(info.value, DataRowError)
    assert "none of the 3 rows" in str(info.value) and "row 1" in str(info.value)


def test_empty_file_is_a_data_error(write):
    p = write("a.jsonl", "\n\n")
    with pytest.raises(DataError, match="no rows"):
        load_examples(str(p))


def test_limit_keeps_first_valid_examples(write):
    rows = [{"text": f"t{i}"} for i in range(1, 11)]
    rows[1] = {"text": ""}
    data = load_examples(str(write("t.jsonl", rows)), skip_bad_rows=True, limit=3)
    assert [e.text for e in data.examples] == ["t1", "t3", "t4"]
    assert data.rows_read == 4 and len(data.skipped) == 1


def test_explicit_format_that_does_not_fit(write):
    p = write("s.json", [SHAREGPT])
    with pytest.raises(DataRowError) as info:
        load_examples(str(p), format="alpaca")
    assert str(info.value) == f"{p} row 1, field 'instruction': missing"


def test_unknown_format_name(write):
    with pytest.raises(DataError, match="unknown data format 'yaml'"):
        load_examples(str(write("s.json", [SHAREGPT])), format="yaml")
