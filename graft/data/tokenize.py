"""Examples -> token ids + labels, through the model's chat template, with the loss mask.

Chat examples train on assistant turns only by default (prompt tokens get label -100); the
end-of-turn marker is part of the assistant span so the model learns to stop. Plain text trains
on every token and is cut into max_length chunks rather than truncated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from graft.errors import DataError

IGNORE = -100


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]  # per-token targets (IGNORE where no loss); empty for classification
    label: int | None = None  # class id, classification only

    @property
    def targets(self) -> int:
        return sum(1 for x in self.labels[1:] if x != IGNORE)


@dataclass
class TokenizedSet:
    items: list[Tokenized] = field(default_factory=list)
    truncated: int = 0  # examples cut at max_length
    dropped: int = 0  # examples with nothing left to learn after truncation

    @property
    def tokens(self) -> int:
        return sum(len(t.input_ids) for t in self.items)


def _render(tokenizer, messages, add_generation_prompt=False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of each assistant turn (with its end marker)."""
    text = _render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(_render(tokenizer, messages[:i], add_generation_prompt=True))
        end = len(_render(tokenizer, messages[: i + 1]))
        # keep the end-of-turn marker, not the template's whitespace after it
        spans.append((start, start + len(text[start:end].rstrip())))
    return text, spans


def tokenize_chat(tokenizer, messages, max_length: int, train_on: str = "responses") -> tuple[Tokenized, bool]:
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(
            "the tokenizer has no chat template, so chat-format data cannot be rendered",
            hint="use a chat/instruct model, or give the data in 'text' format",
        )
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"]
    if train_on == "all":
        labels = list(ids)
    else:
        labels = [t if any(s <= off[0] < e for s, e in spans) else IGNORE for t, off in zip(ids, enc["offset_mapping"])]
    truncated = len(ids) > max_length
    return Tokenized(ids[:max_length], labels[:max_length]), truncated


def tokenize_text(tokenizer, text: str, max_length: int) -> list[Tokenized]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        ids = ids + [tokenizer.eos_token_id]
    return [Tokenized(ids[i : i + max_length], ids[i : i + max_length]) for i in range(0, len(ids), max_length)]


def tokenize_examples(examples, tokenizer, max_length: int, train_on: str = "responses") -> TokenizedSet:
    out = TokenizedSet()
    for ex in examples:
        if ex.kind == "chat":
            item, truncated = tokenize_chat(tokenizer, ex.messages, max_length, train_on)
            out.truncated += truncated
            if item.targets == 0:
                out.dropped += 1
                continue
            out.items.append(item)
        elif ex.kind == "text":
            out.items += [c for c in tokenize_text(tokenizer, ex.text, max_length) if len(c.input_ids) > 1]
        else:
            raise DataError(
                f"{ex.source}: {ex.kind} data cannot train a causal language model",
                hint="train a classifier with --task classification (an encoder such as minilm-l6 suits it)",
            )
    if not out.items:
        raise DataError("no trainable examples after tokenization (every response was truncated away?)",
                        hint="raise data.max_length")
    return out
