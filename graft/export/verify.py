"""Does an exported model still predict what the model it came from predicts?

The reference model answers a fixed set of chat prompts greedily; every candidate (a GGUF reloaded by
transformers or run by llama.cpp, a merged safetensors folder, ...) then scores the same token
sequences, and the next-token predictions are compared position by position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graft.errors import GraftError

DEFAULT_PROMPTS: list[str] = [
    "What is the capital of France?",
    "Give three tips for staying healthy.",
    "Write a haiku about autumn leaves.",
    "Translate 'good morning' into Spanish.",
    "What is 12 times 7?",
    "Explain photosynthesis in one sentence.",
    "List the days of the week.",
    "Write a Python function that reverses a string.",
    "Who wrote Romeo and Juliet?",
    "Summarise: The cat sat on the mat because it was warm.",
    "What colour is the sky on a clear day?",
    "Suggest a name for a small bakery.",
    "Convert 5 kilometres to miles.",
    "Why do we have seasons?",
]

LogitsFn = Callable[[list[int]], np.ndarray]  # token ids -> [len(ids), vocab] float32


class ReloadError(GraftError):
    """An exported file cannot be loaded back for verification."""


@dataclass
class Sequence:
    ids: list[int]
    prompt_len: int


def reference_sequences(model, tokenizer, prompts: list[str] = DEFAULT_PROMPTS, new_tokens: int = 16) -> list[Sequence]:
    """Each prompt as a chat turn (the tokenizer's template) followed by the model's greedy answer."""
    import torch

    from graft.evaluate.generate import render_prompt

    model.eval()
    seqs = []
    with torch.inference_mode():
        for prompt in prompts:
            text = render_prompt(tokenizer, [{"role": "user", "content": prompt}])
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(model.device)
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            )
            seqs.append(Sequence(ids=out[0].tolist(), prompt_len=ids.shape[1]))
    return seqs


def hf_logits(model) -> LogitsFn:
    import torch

    model.eval()

    def logits(ids: list[int]) -> np.ndarray:
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids], device=model.device)).logits[0]
        return out.float().cpu().numpy()

    return logits


def gguf_logits_transformers(gguf_path: Path) -> LogitsFn:
    """Logits from transformers' own GGUF loader (dequantized to float32)."""
    import torch
    from transformers import AutoModelForCausalLM

    gguf_path = Path(gguf_path)
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    except ValueError as e:  # a tensor type or architecture this transformers cannot read
        raise ReloadError(f"transformers cannot load {gguf_path.name}: {e}") from e
    return hf_logits(model)


def gguf_logits_llama_cpp(gguf_path: Path) -> LogitsFn:
    """Logits from llama.cpp; raises LlamaCppUnavailableError without llama-cpp-python."""
    from graft.export.llama_cpp import logits_fn

    return logits_fn(Path(gguf_path))


def agreement(reference: LogitsFn, candidate: LogitsFn, seqs: list[Sequence]) -> dict:
    """Next-token agreement over each sequence's continuation (the positions that predict answer tokens).

    top1_match: share of those positions where both argmaxes agree; greedy_prefix_match: mean share of
    each answer the candidate would reproduce greedily before its first different token.
    """
    matches = positions = 0
    prefixes, max_diff, abs_sum, n_values = [], 0.0, 0.0, 0
    for seq in seqs:
        rows = slice(seq.prompt_len - 1, len(seq.ids) - 1)  # row t predicts token t + 1
        ref, cand = reference(seq.ids)[rows], candidate(seq.ids)[rows]
        if ref.shape != cand.shape:
            raise ReloadError(f"candidate logits have shape {cand.shape}, the reference {ref.shape}")
        if not len(ref):
            continue
        same = ref.argmax(-1) == cand.argmax(-1)
        matches, positions = matches + int(same.sum()), positions + len(same)
        hits = cand.argmax(-1) == np.asarray(seq.ids[seq.prompt_len :])
        prefixes.append((int(np.argmin(hits)) if not hits.all() else len(hits)) / len(hits))
        diff = np.abs(ref - cand)
        max_diff, abs_sum, n_values = max(max_diff, float(diff.max())), abs_sum + float(diff.sum()), n_values + diff.size
    return {
        "prompts": len(seqs),
        "positions": positions,
        "top1_match": matches / positions if positions else 0.0,
        "max_abs_logit_diff": max_diff,
        "mean_abs_logit_diff": abs_sum / n_values if n_values else 0.0,
        "greedy_prefix_match": float(np.mean(prefixes)) if prefixes else 0.0,
    }
