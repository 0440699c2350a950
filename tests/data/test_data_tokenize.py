"""Tokenization through the chat template, with the loss mask, on the tiny ChatML tokenizer."""

from __future__ import annotations

import pytest

from graft.data.example import Example
from graft.data.tokenize import IGNORE, tokenize_chat, tokenize_examples, tokenize_text
from graft.errors import DataError

SYSTEM = {"role": "system", "content": "You are helpful."}
USER = {"role": "user", "content": "What colour is the sky?"}
ANSWER = "The sky is blue."
CHAT = [SYSTEM, USER, {"role": "assistant", "content": ANSWER}]


def _ids(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def _prompt_ids(tok, messages) -> list[int]:
    """Token ids of everything before the assistant content (the generation prompt included)."""
    return _ids(tok, tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def _labelled_runs(labels: list[int]) -> list[list[int]]:
    runs, current = [], []
    for x in labels:
        if x == IGNORE:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(x)
    return runs + ([current] if current else [])


def test_fixture_template_is_chatml(tiny_tokenizer):
    text = tiny_tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert text == (
        "<|im_start|>system\nYou are helpful.<|im_end|>\n"
        "<|im_start|>user\nWhat colour is the sky?<|im_end|>\n"
        "<|im_start|>assistant\nThe sky is blue.<|im_end|>\n"
    )
    prompt = tiny_tokenizer.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert tiny_tokenizer.eos_token == tiny_tokenizer.pad_token == "<|im_end|>"


def test_prompt_masked_response_and_end_marker_labelled(tiny_tokenizer):
    tok = tiny_tokenizer
    item, truncated = tokenize_chat(tok, CHAT, max_length=256)
    assert not truncated
    assert item.input_ids == _ids(tok, tok.apply_chat_template(CHAT, tokenize=False))
    prompt = _prompt_ids(tok, CHAT[:2])
    n = len(prompt)
    assert item.input_ids[:n] == prompt
    # system and user turns (and the assistant header) carry no loss
    assert item.labels[:n] == [IGNORE] * n
    # the answer and its end marker are labelled with their own ids
    answer = _ids(tok, ANSWER) + [tok.convert_tokens_to_ids("<|im_end|>")]
    assert item.input_ids[n : n + len(answer)] == answer
    assert item.labels[n : n + len(answer)] == answer
    assert len(item.labels) == len(item.input_ids)


def test_labelled_tokens_are_exactly_response_and_end_marker(tiny_tokenizer):
    item, _ = tokenize_chat(tiny_tokenizer, CHAT, max_length=256)
    labelled = [x for x in item.labels if x != IGNORE]
    assert tiny_tokenizer.decode(labelled) == ANSWER + "<|im_end|>"


def test_train_on_all_labels_every_token(tiny_tokenizer):
    item, _ = tokenize_chat(tiny_tokenizer, CHAT, max_length=256, train_on="all")
    assert item.labels == item.input_ids
    assert IGNORE not in item.labels


def test_multi_turn_labels_both_answers_not_the_user_between(tiny_tokenizer):
    tok = tiny_tokenizer
    chat = [
        SYSTEM,
        {"role": "user", "content": "What colour is the apple?"},
        {"role": "assistant", "content": "The apple is red."},
        {"role": "user", "content": "And the grass?"},
        {"role": "assistant", "content": "The grass is green."},
    ]
    item, _ = tokenize_chat(tok, chat, max_length=256)
    runs = _labelled_runs(item.labels)
    assert len(runs) == 2, [tok.decode(r) for r in runs]
    assert tok.decode(runs[0]).startswith("The apple is red.<|im_end|>")
    assert tok.decode(runs[1]).startswith("The grass is green.<|im_end|>")
    n1 = len(_prompt_ids(tok, chat[:2]))
    assert item.labels[:n1] == [IGNORE] * n1 and item.labels[n1] == item.input_ids[n1]
    # the second user turn (and the second assistant header) is unlabelled
    n2 = len(_prompt_ids(tok, chat[:4]))
    unlabelled = tok.decode([t for t, l in zip(item.input_ids[:n2], item.labels[:n2]) if l == IGNORE])
    assert "<|im_start|>user\nAnd the grass?<|im_end|>" in unlabelled
    assert item.labels[:n2][-1] == IGNORE and item.labels[n2] == item.input_ids[n2]


def _chat(answer: str, question: str = "What colour is the sky?") -> Example:
    return Example(messages=[{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                   source="mem", row=1)


def test_truncation_is_counted(tiny_tokenizer):
    tok = tiny_tokenizer
    long = _chat("The sky is blue, and the sea is blue, and the grape is purple, and the snow is white.")
    n_prompt = len(_prompt_ids(tok, long.messages[:1]))
    max_length = n_prompt + 6
    short = _chat("Blue.")
    assert len(_ids(tok, tok.apply_chat_template(short.messages, tokenize=False))) <= max_length
    out = tokenize_examples([long, short], tok, max_length)
    assert (out.truncated, out.dropped, len(out.items)) == (1, 0, 2)
    cut = out.items[0]
    assert len(cut.input_ids) == len(cut.labels) == max_length
    assert cut.targets == 6  # the six answer tokens that survived
    assert out.tokens == sum(len(i.input_ids) for i in out.items)


def test_answer_cut_away_entirely_is_dropped(tiny_tokenizer):
    tok = tiny_tokenizer
    long_q = _chat("Blue.", question="What colour is the sky over the sea at night in the cold north?")
    short = _chat("Red.", question="Apple?")
    n_prompt = len(_prompt_ids(tok, long_q.messages[:1]))
    assert len(_prompt_ids(tok, short.messages[:1])) + 3 < n_prompt
    out = tokenize_examples([long_q, short], tok, max_length=n_prompt)
    assert (out.truncated, out.dropped, len(out.items)) == (1, 1, 1)
    assert tok.decode([x for x in out.items[0].labels if x != IGNORE]).startswith("Red.")
    # one token of answer left is still something to learn
    kept = tokenize_examples([long_q], tok, max_length=n_prompt + 1)
    assert (kept.truncated, kept.dropped, kept.items[0].targets) == (1, 0, 1)
    with pytest.raises(DataError, match="no trainable examples"):
        tokenize_examples([long_q], tok, max_length=n_prompt)


def test_text_is_chunked_covering_every_token(tiny_tokenizer):
    tok = tiny_tokenizer
    text = " ".join(f"The {w} is here." for w in ["apple", "sky", "grass", "coal", "milk"] * 6)
    ids = _ids(tok, text) + [tok.eos_token_id]
    chunks = tokenize_text(tok, text, max_length=16)
    assert len(ids) > 40
    assert [len(c.input_ids) for c in chunks[:-1]] == [16] * (len(chunks) - 1)
    assert 1 <= len(chunks[-1].input_ids) <= 16
    assert sum((c.input_ids for c in chunks), []) == ids
    assert all(c.labels == c.input_ids for c in chunks)
    out = tokenize_examples([Example(text=text, source="mem", row=1)], tok, max_length=16)
    assert [c.input_ids for c in out.items] == [c.input_ids for c in chunks if len(c.input_ids) > 1]
    assert (out.truncated, out.dropped) == (0, 0)


def test_classification_rows_and_missing_template_are_refused(tiny_tokenizer):
    with pytest.raises(DataError, match="classification"):
        tokenize_examples([Example(text="good film", label="pos", source="f.csv", row=3)], tiny_tokenizer, 32)
    tok = tiny_tokenizer
    saved = tok.chat_template
    try:
        tok.chat_template = None
        with pytest.raises(DataError, match="no chat template"):
            tokenize_chat(tok, CHAT, 64)
    finally:
        tok.chat_template = saved
