"""One training or evaluation example, whatever file format it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["chat", "text", "classification"]


@dataclass
class Example:
    """A chat conversation, a plain text, or a text with a label; remembers where it came from.

    ``source`` and ``row`` (1-based) let later stages (tokenizing, evaluation) point the user at
    the exact row that caused a problem.
    """

    messages: list[dict[str, str]] | None = None
    text: str | None = None
    label: str | None = None
    source: str = ""
    row: int = 0

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.text is None):
            raise ValueError("an Example has exactly one of messages or text")
        if self.label is not None and self.text is None:
            raise ValueError("a label belongs to a text example, not a chat")

    @property
    def kind(self) -> Kind:
        if self.messages is not None:
            return "chat"
        return "classification" if self.label is not None else "text"
