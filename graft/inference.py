"""Load a run, an adapter folder or a plain model for use, and stream replies from it."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from graft.errors import RunError
from graft.progress import Progress


@dataclass
class Loaded:
    model: object
    tokenizer: object
    has_adapter: bool
    base: str  # the base model's spec
    run_dir: Path | None = None


def load_for_inference(target: str | Path, progress: Progress | None = None, merge: bool = False) -> Loaded:
    """`target` is a run folder, an adapter folder (PEFT format) or anything `resolve` accepts.

    With `merge`, adapter weights are folded into the base (faster generation, adapter no longer switchable).
    """
    from graft.models import load_model
    from graft.train.run_folder import RunFolder

    path = Path(target)
    if (path / "config.yaml").is_file():
        folder = RunFolder.open(path)
        cfg = folder.load_config()
        adapter = folder.adapter if (folder.adapter / "adapter_config.json").is_file() else None
        if adapter is None:
            latest = folder.latest_checkpoint()
            if latest is None:
                raise RunError(f"run {path} has no adapter and no checkpoint yet")
            adapter = latest[1] / "adapter"
        model, tokenizer = load_model(cfg.model.name, cfg.model.dtype, cfg.model.trust_remote_code, task="causal-lm", progress=progress)
        return Loaded(_attach(model, adapter, merge), tokenizer, True, cfg.model.name, path)
    if (path / "adapter_config.json").is_file():
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise RunError(f"{path}/adapter_config.json names no base model")
        model, tokenizer = load_model(base, task="causal-lm", progress=progress)
        return Loaded(_attach(model, path, merge), tokenizer, True, base)
    model, tokenizer = load_model(str(target), task="causal-lm", progress=progress)
    return Loaded(model, tokenizer, False, str(target))


def _attach(model, adapter_dir: Path, merge: bool):
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, adapter_dir)
    return model.merge_and_unload() if merge else model


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
