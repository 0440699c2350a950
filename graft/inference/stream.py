"""Stream a chat reply from a causal LM as it is generated."""

from __future__ import annotations

import threading
from typing import Iterator

import torch


def stream_reply(model, tokenizer, messages: list[dict[str, str]], max_new_tokens: int = 256,
                 temperature: float = 0.0) -> Iterator[str]:
    """Yield the assistant's reply piece by piece as it is generated."""
    from transformers import TextIteratorStreamer

    from graft.evaluate.generate import render_prompt

    enc = tokenizer(render_prompt(tokenizer, messages), return_tensors="pt", add_special_tokens=False)
    enc = {k: v.to(model.device) for k, v in enc.items()}
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    kwargs = dict(**enc, max_new_tokens=max_new_tokens, streamer=streamer, pad_token_id=tokenizer.pad_token_id, **sampling)
    model.eval()
    worker = threading.Thread(target=_generate, args=(model, kwargs), daemon=True)
    worker.start()
    yield from streamer
    worker.join()


@torch.inference_mode()
def _generate(model, kwargs) -> None:
    model.generate(**kwargs)
