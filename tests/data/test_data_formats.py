"""Every format: a good file converts correctly; each kind of bad row names file, row and field."""

from __future__ import annotations

import pytest

from graft.data import load_examples

ALPACA_OK = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}
SHAREGPT_OK = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
MESSAGES_OK = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


# -- alpaca -----------------------------------------------------------------------------------------


def test_alpaca_good(write):
    p = write("a.json", [ALPACA_OK, {"instruction": "Say hi.", "input": "", "output": "hi", "system": "Be brief."}])
    data = load_examples(str(p), format="alpaca")
    first, second = data.examples
    assert first.messages == [{"role": "user", "content": "Add the numbers.\n\n2 and 3"},
                              {"role": "assistant", "content": "5"}]
    assert second.messages[0] == {"role": "system", "content": "Be brief."}
    assert second.messages[1] == {"role": "user", "content": "Say hi."}
    assert (first.kind, first.row, second.row, first.source) == ("chat", 1, 2, str(p))


def test_alpaca_system_prompt_is_a_default(write):
    p = write("a.json", [ALPACA_OK, {**ALPACA_OK, "system": "Own prompt."}])
    ex = load_examples(str(p), system_prompt="Default.").examples
    assert ex[0].messages[0] == {"role": "system", "content": "Default."}
    assert ex[1].messages[0] == {"role": "system", "content": "Own prompt."}


@pytest.mark.parametrize(
    "bad, field, problem",
    [
        ({"input": "", "output": "x"}, "instruction", "missing"),
        ({"instruction": "", "output": "x"}, "instruction", "empty"),
        ({"instruction": "Q", "output": 5}, "output", "expected a string, got a number"),
        ({"instruction": "Q", "output": ["a"]}, "output", "expected a string, got a list"),
        ({"instruction": "Q", "output": "  "}, "output", "empty response"),
        ({"instruction": "Q", "input": 3, "output": "x"}, "input", "expected a string"),
        ({"instruction": "Q", "output": None}, "output", "is null"),
    ],
)
def test_alpaca_bad_rows(write, bad, field, problem, row_error, assert_names):
    p = write("alp.json", [ALPACA_OK, ALPACA_OK, bad])
    assert_names(row_error(p, format="alpaca"), p, 3, field, problem)


def test_non_object_row(write, row_error, assert_names):
    p = write("a.json", [ALPACA_OK, ["instruction", "output"]])
    assert_names(row_error(p, format="alpaca"), p, 2, None, "expected an object with named fields, got a list")


# -- sharegpt ---------------------------------------------------------------------------------------


def test_sharegpt_good(write):
    row = {"conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "Hi"},
                             {"from": "gpt", "value": "Hello"}, {"from": "user", "value": "Bye"},
                             {"from": "assistant", "value": "Bye!"}]}
    ex = load_examples(str(write("s.json", [row])), format="sharegpt").examples[0]
    assert [m["role"] for m in ex.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert ex.messages[0]["content"] == "Be kind." and ex.messages[-1]["content"] == "Bye!"


def test_sharegpt_tool_calls_and_tools(write):
    row = {"conversations": [{"from": "human", "value": "Weather?"},
                             {"from": "function_call", "value": '{"name": "weather"}'},
                             {"from": "observation", "value": '{"temp": 20}'},
                             {"from": "gpt", "value": "It is 20 degrees."}],
           "tools": '[{"name": "weather"}]', "system": "You help."}
    ex = load_examples(str(write("t.json", [row]))).examples[0]
    assert [m["role"] for m in ex.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert ex.messages[0]["content"].startswith("You help.\n\n")
    assert '[{"name": "weather"}]' in ex.messages[0]["content"]
    assert ex.messages[2]["content"] == '{"name": "weather"}'


def test_sharegpt_empty_tools_add_no_system(write):
    row = {**SHAREGPT_OK, "tools": "[]"}
    ex = load_examples(str(write("t.json", [row]))).examples[0]
    assert [m["role"] for m in ex.messages] == ["user", "assistant"]


@pytest.mark.parametrize(
    "conv, field, problem",
    [
        ([], "conversations", "empty conversation"),
        ([{"from": "human", "value": "Hi"}], "conversations", "no assistant turn"),
        ([{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}, {"from": "human", "value": "?"}],
         "conversations", "ends with a user turn"),
        ([{"from": "human", "value": "Hi"}, {"from": "bot", "value": "Yo"}], "conversations[1].from", "unknown role 'bot'"),
        ([{"from": "human", "value": "Hi"}, {"from": "gpt", "value": ""}], "conversations[1].value", "empty response"),
        ([{"from": "human", "value": "Hi"}, {"from": "gpt", "value": 7}], "conversations[1].value", "got a number"),
        ([{"from": "human"}, {"from": "gpt", "value": "x"}], "conversations[0].value", "missing"),
        ([{"value": "Hi"}, {"from": "gpt", "value": "x"}], "conversations[0].from", "missing"),
        (["Hi", {"from": "gpt", "value": "x"}], "conversations[0]", "expected an object"),
        ([{"from": "human", "value": "Hi"}, {"from": "system", "value": "late"}, {"from": "gpt", "value": "x"}],
         "conversations[1].from", "only allowed as the first turn"),
    ],
)
def test_sharegpt_bad_rows(write, conv, field, problem, row_error, assert_names):
    p = write("sg.jsonl", [SHAREGPT_OK, {"conversations": conv}])
    assert_names(row_error(p, format="sharegpt"), p, 2, field, problem)


def test_sharegpt_conversations_not_a_list(write, row_error, assert_names):
    p = write("sg.json", [{"conversations": "Hi"}])
    assert_names(row_error(p, format="sharegpt"), p, 1, "conversations", "expected a list of turns, got a string")


# -- messages ---------------------------------------------------------------------------------------


def test_messages_good(write):
    row = {"messages": [{"role": "system", "content": "S"}, *MESSAGES_OK["messages"]]}
    data = load_examples(str(write("m.jsonl", [MESSAGES_OK, row])))
    assert data.format == "messages"
    assert data.examples[0].messages == MESSAGES_OK["messages"]
    assert data.examples[1].messages[0] == {"role": "system", "content": "S"}


@pytest.mark.parametrize(
    "msgs, field, problem",
    [
        ([], "messages", "empty conversation"),
        ([{"role": "user", "content": "Hi"}, {"role": "tool", "content": "{}"}], "messages[1].role", "unknown role 'tool'"),
        ([{"role": "user", "content": "Hi"}], "messages", "no assistant turn"),
        ([{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Hey"}], "messages", "ends with a user turn"),
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}], "messages[1].content", "got null"),
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " "}], "messages[1].content", "empty response"),
        ([{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}], "messages[0].content", "empty message"),
        ([{"role": "system", "content": "S"}], "messages", "only a system turn"),
    ],
)
def test_messages_bad_rows(write, msgs, field, problem, row_error, assert_names):
    p = write("m.jsonl", [MESSAGES_OK, MESSAGES_OK, {"messages": msgs}])
    assert_names(row_error(p, format="messages"), p, 3, field, problem)


# -- text -------------------------------------------------------------------------------------------


def test_text_good(write):
    data = load_examples(str(write("t.jsonl", [{"text": "one"}, {"text": "two", "meta": 1}])))
    assert data.format == "text"
    assert [(e.text, e.kind, e.label) for e in data.examples] == [("one", "text", None), ("two", "text", None)]


@pytest.mark.parametrize("bad, problem", [({"txt": "x"}, "missing"), ({"text": ""}, "empty"),
                                          ({"text": 12}, "got a number")])
def test_text_bad_rows(write, bad, problem, row_error, assert_names):
    p = write("t.jsonl", [{"text": "ok"}, bad])
    assert_names(row_error(p, format="text"), p, 2, "text", problem)


# -- classification ---------------------------------------------------------------------------------


def test_classification_good(write):
    data = load_examples(str(write("c.json", [{"text": "great ", "label": 1}, {"text": "bad", "label": " neg "}])))
    assert data.format == "classification"
    assert [(e.text, e.label, e.kind) for e in data.examples] == [("great", "1", "classification"),
                                                                  ("bad", "neg", "classification")]


def test_classification_sentence_column(write):
    p = write("c.tsv", "sentence\tlabel\nfine film \t1\ndull \t0\n")
    data = load_examples(str(p))
    assert data.format == "classification"
    assert [(e.text, e.label) for e in data.examples] == [("fine film", "1"), ("dull", "0")]


@pytest.mark.parametrize(
    "bad, field, problem",
    [
        ({"label": 1}, "text", "missing"),
        ({"text": "x"}, "label", "missing"),
        ({"text": "x", "label": 0.5}, "label", "got a number"),
        ({"text": "x", "label": True}, "label", "got a boolean"),
        ({"text": "x", "label": ""}, "label", "empty"),
        ({"text": "", "label": 1}, "text", "empty"),
    ],
)
def test_classification_bad_rows(write, bad, field, problem, row_error, assert_names):
    p = write("c.json", [{"text": "ok", "label": 0}, bad])
    assert_names(row_error(p, format="classification"), p, 2, field, problem)
