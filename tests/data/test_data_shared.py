"""The real datasets in ../shared/data, when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from graft.data import load_examples
from graft.errors import DataRowError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def shared(rel: str) -> str:
    p = SHARED / rel
    if not p.is_file():
        pytest.skip(f"shared dataset not present: {p}")
    return str(p)


def test_alpaca_5000():
    path = shared("alpaca_5000/alpaca_5000.json")
    # Two rows of the upstream sample have an empty output; strict loading must stop at the first.
    with pytest.raises(DataRowError) as info:
        load_examples(path)
    assert (info.value.row, info.value.field, info.value.problem) == (2336, "output", "empty response")
    data = load_examples(path, skip_bad_rows=True)
    assert (data.format, data.rows_read, len(data.examples)) == ("alpaca", 5000, 4998)
    assert [e.row for e in data.skipped] == [2336, 4659]
    assert data.examples[0].messages[0]["content"].startswith("Are the two sentences below grammatically correct?")


def test_sharegpt_dummy():
    data = load_examples(shared("sharegpt_fastchat_dummy/dummy_conversation.json"))
    assert (data.format, len(data.examples), data.skipped) == ("sharegpt", 500, [])
    assert data.examples[0].messages[0] == {"role": "user", "content": "Who are you?"}


def test_glaive_toolcall():
    data = load_examples(shared("glaive_toolcall_en_demo/glaive_toolcall_en_demo.json"))
    assert (data.format, len(data.examples)) == ("sharegpt", 300)
    first = data.examples[0].messages
    assert first[0]["role"] == "system" and "search_recipes" in first[0]["content"]
    assert all(m["role"] in {"system", "user", "assistant"} for e in data.examples for m in e.messages)


def test_sst2_dev():
    data = load_examples(shared("sst2/dev.tsv"))
    assert (data.format, len(data.examples)) == ("classification", 872)
    assert {e.label for e in data.examples} == {"0", "1"}
    assert data.examples[0].text == "it 's a charming and often affecting journey ."


def test_tinyshakespeare():
    data = load_examples(shared("tinyshakespeare/input.txt"))
    assert (data.format, len(data.examples)) == ("text", 1)
    assert len(data.examples[0].text) == 1_115_394
