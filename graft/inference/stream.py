"""Stream a chat reply from a causal LM as it is generated."""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Generator, Iterator, Sequence

import torch

from graft.errors import ConfigError


@dataclass
class Usage:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop": end of turn or a stop string; "length": out of tokens (or of context)
    seconds: float = 0.0  # generating, from taking the model to the last token (a wait for the model not counted)


@dataclass
class Completion:
    text: str
    usage: Usage


class Reply:
    """One reply's text pieces as they are generated; `usage` is set once the last one is read.

    Iterate it once. Leaving the loop early (or `close()`) stops the generation.
    """

    def __init__(self, pieces: Generator[str, None, Usage]):
        self._pieces = pieces
        self.usage: Usage | None = None

    def __iter__(self) -> Iterator[str]:
        self.usage = yield from self._pieces

    def close(self) -> None:
        self._pieces.close()

    def collect(self) -> Completion:
        text = "".join(self)
        assert self.usage is not None
        return Completion(text, self.usage)


def stream_reply(model, tokenizer, messages: list[dict[str, str]], max_new_tokens: int = 256,
                 temperature: float = 0.0, top_p: float = 1.0, stop: Sequence[str] | None = None,
                 seed: int | None = None, guard: AbstractContextManager | None = None,
                 repetition_penalty: float = 1.0) -> Reply:
    """The assistant's reply to `messages`, piece by piece; greedy when temperature or top_p is 0.

    The prompt is checked now (a ConfigError if it overflows the model's context); generation starts at
    the first piece read, inside `guard` (the pool's per-model lock and adapter choice). The text stops
    before the first of `stop`. `seed` seeds torch's global RNG, so a seeded sample is reproducible
    when no other sampled generation runs in the process at the same time.
    """
    from graft.evaluate.generate import render_prompt

    enc = tokenizer(render_prompt(tokenizer, messages), return_tensors="pt", add_special_tokens=False)
    prompt_tokens = enc["input_ids"].shape[1]
    context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(context, int):
        if prompt_tokens >= context:
            raise ConfigError(f"the prompt is {prompt_tokens} tokens; this model reads at most {context}",
                              hint="shorten the conversation")
        max_new_tokens = min(max_new_tokens, context - prompt_tokens)
    sampled = temperature > 0 and top_p > 0
    # top_k=0: sample from the whole distribution, as temperature/top_p promise (transformers' default is 50)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if sampled else {"do_sample": False}
    kwargs = dict(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
    if repetition_penalty != 1.0:  # small models loop on long prompts; >1 discourages tokens already used
        kwargs["repetition_penalty"] = repetition_penalty
    stops = [s for s in stop or () if s]
    if stops:  # transformers stops at the token that completes one; _StopText cuts the text before it
        kwargs.update(stop_strings=stops, tokenizer=tokenizer)
    return Reply(_pieces(model, tokenizer, kwargs, prompt_tokens, stops, seed, guard or nullcontext()))


def _pieces(model, tokenizer, kwargs: dict, prompt_tokens: int, stops: list[str], seed: int | None,
            guard: AbstractContextManager) -> Generator[str, None, Usage]:
    from transformers import StoppingCriteriaList, TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    cancel = threading.Event()
    kwargs = dict(kwargs, streamer=streamer, stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]))
    result: dict = {}
    cut = _StopText(stops)
    with guard:
        started = time.perf_counter()
        if seed is not None:
            torch.manual_seed(seed)
        model.eval()
        worker = threading.Thread(target=_generate, args=(model, kwargs, streamer, result), daemon=True)
        worker.start()
        try:
            for piece in streamer:
                text = cut.feed(piece)
                if text:
                    yield text
                if cut.hit:
                    break
            else:
                if rest := cut.flush():
                    yield rest
        finally:
            # the model must be idle before the guard lets the next request switch its adapter
            cancel.set()
            if worker is not threading.current_thread():  # the garbage collector may close us from there
                worker.join()
            seconds = time.perf_counter() - started
    if "error" in result:
        raise result["error"]
    new = result["output"][0, kwargs["input_ids"].shape[1]:].tolist()
    eos = _eos_ids(model, tokenizer)
    ended = cut.hit or len(new) < kwargs["max_new_tokens"] or (new and new[-1] in eos)
    return Usage(prompt_tokens, len(new), "stop" if ended else "length", seconds)


@torch.inference_mode()
def _generate(model, kwargs: dict, streamer, result: dict) -> None:
    try:
        result["output"] = model.generate(**kwargs)
    except Exception as e:  # re-raised in the reading thread; end() unblocks it
        result["error"] = e
        streamer.end()


class _Cancelled:
    """A stopping criterion: the reader has gone (or found a stop string)."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def _eos_ids(model, tokenizer) -> set[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = ids if ids is not None else tokenizer.eos_token_id
    return set(ids) if isinstance(ids, (list, tuple)) else {ids}


class _StopText:
    """Cuts streamed text before the first stop string; holds back a tail that may begin one."""

    def __init__(self, stops: list[str]):
        self.stops, self.held, self.hit = stops, "", False

    def feed(self, piece: str) -> str:
        text, self.held = self.held + piece, ""
        found = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if found:
            self.hit = True
            return text[: min(found)]
        keep = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        if keep:
            text, self.held = text[:-keep], text[-keep:]
        return text

    def flush(self) -> str:
        rest, self.held = self.held, ""
        return rest
