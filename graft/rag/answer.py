"""Retrieval-augmented answers: retrieve, fill the template, generate, and say which sources were cited."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from graft.errors import ConfigError
from graft.rag.kb import Hit, KnowledgeBase
from graft.rag.template import RagTemplate

_CITATION = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


@dataclass
class RagPrompt:
    messages: list[dict[str, str]]
    sources: list[Hit]  # the retrieved chunks the prompt holds, numbered as cited
    generation: dict  # keyword arguments for the generator
    left_out: int = 0  # retrieved chunks past the context budget


@dataclass
class RagAnswer:
    text: str
    sources: list[Hit]
    cited: list[int] = field(default_factory=list)
    usage: object | None = None

    def to_dict(self) -> dict:
        return {"answer": self.text, "cited": self.cited,
                "sources": [{**h.to_dict(), "cited": h.n in self.cited} for h in self.sources]}


def build_prompt(kb: KnowledgeBase, question: str, template: RagTemplate, tokenizer=None,
                 k: int | None = None) -> RagPrompt:
    """The chat messages that ask `question` over the k best chunks of `kb` (as many as fit the budget)."""
    question = (question or "").strip()
    if not question:
        raise ConfigError("the question is empty")
    return prompt_from_hits(question, kb.search(question, k or template.k), template, tokenizer)


def prompt_from_hits(question: str, hits: list[Hit], template: RagTemplate, tokenizer=None) -> RagPrompt:
    """The chat messages over given sources, in their order and numbering (`build_prompt` after retrieval;
    training rows whose sources were arranged by hand)."""
    rendered, kept, used = [], [], 0
    for hit in hits:
        block = render_source(template, hit)
        cost = len(tokenizer(block, add_special_tokens=False)["input_ids"]) if tokenizer is not None else len(block) // 4
        if kept and used + cost > template.max_context_tokens:
            break
        rendered.append(block)
        kept.append(hit)
        used += cost
    user = template.prompt.format(sources="\n\n".join(rendered), question=question.strip())
    messages = ([{"role": "system", "content": template.system}] if template.system.strip() else []) + \
        [{"role": "user", "content": user}]
    return RagPrompt(messages, kept, template.generation_options(), len(hits) - len(kept))


CHAT_MARKUP = 32  # tokens a chat template adds around the messages (role markers, the assistant opening)


def fit_to_context(template: RagTemplate, model, tokenizer, question: str, max_new_tokens: int) -> RagTemplate:
    """The template with its source budget cut to what `model`'s context holds beside the question, the
    instructions and the answer (a small model's 512 or 2048 tokens, not the template's 1500)."""
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if not isinstance(context, int):
        return template
    fixed = template.system + template.prompt.format(sources="", question=question)
    used = len(tokenizer(fixed, add_special_tokens=False)["input_ids"]) if tokenizer is not None else len(fixed) // 4
    room = context - max_new_tokens - used - CHAT_MARKUP
    if room >= template.max_context_tokens:
        return template
    return template.model_copy(update={"max_context_tokens": max(16, room)})


def render_source(template: RagTemplate, hit: Hit) -> str:
    c = hit.chunk
    return template.source.format(n=hit.n, source=c.source, title=f" ({c.title})" if c.title else "",
                                  page=f" p. {c.page}" if c.page else "", text=c.text)


def cited_numbers(text: str, n_sources: int) -> list[int]:
    """The source numbers `text` cites as [n] or [n, m], in order of first use, within 1..n_sources."""
    out: list[int] = []
    for m in _CITATION.finditer(text):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(part)
            if 1 <= n <= n_sources and n not in out:
                out.append(n)
    return out


def answer(prompt: RagPrompt, generate: Callable, on_piece: Callable[[str], None] | None = None) -> RagAnswer:
    """Run `generate(messages, **options)` (a Reply: pieces, then collect) over the prompt."""
    reply = generate(prompt.messages, **prompt.generation)
    pieces = []
    for piece in reply:
        pieces.append(piece)
        if on_piece:
            on_piece(piece)
    text = "".join(pieces).strip()
    usage = getattr(reply, "usage", None)
    return RagAnswer(text, prompt.sources, cited_numbers(text, len(prompt.sources)), usage)
