"""Labelled texts -> token ids + class ids for sequence classification."""

from __future__ import annotations

from graft.data.tokenize import Tokenized, TokenizedSet
from graft.errors import DataError, DataRowError


def label_names(examples) -> list[str]:
    """The classes seen in training data, in a stable order (numerically when every label is a number)."""
    for ex in examples:
        _check_kind(ex)
    names = {ex.label for ex in examples}
    if len(names) < 2:
        raise DataError(f"classification needs at least two labels; the training data has {sorted(names) or 'none'}")
    numeric = all(n.lstrip("-").isdigit() for n in names)
    return sorted(names, key=int) if numeric else sorted(names)


def tokenize_classification(examples, tokenizer, max_length: int, labels: list[str]) -> TokenizedSet:
    index = {name: i for i, name in enumerate(labels)}
    out = TokenizedSet()
    for ex in examples:
        _check_kind(ex)
        if ex.label not in index:
            raise DataRowError(ex.source, ex.row, "label", f"'{ex.label}' is not a class of the training data ({', '.join(labels)})")
        ids = tokenizer(ex.text, truncation=False, add_special_tokens=True)["input_ids"]
        if len(ids) > max_length:
            out.truncated += 1
            # keep the end marker ([SEP]) a BERT-style encoder expects
            ids = ids[: max_length - 1] + ids[-1:]
        out.items.append(Tokenized(ids, [], label=index[ex.label]))
    if not out.items:
        raise DataError("no examples to classify")
    return out


def _check_kind(ex) -> None:
    if ex.kind != "classification":
        raise DataError(
            f"{ex.source}: {ex.kind} data cannot train a classifier; expected text + label rows",
            hint="set --format classification, or drop --task classification for chat/text data",
        )
