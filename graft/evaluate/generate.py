"""Greedy generation from chat messages, batched with left padding."""

from __future__ import annotations

import torch

from graft.progress import NullProgress, Progress


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    """The prompt text for the next assistant turn, via the model's chat template."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\n"


@torch.inference_mode()
def generate_batch(
    model,
    tokenizer,
    conversations: list[list[dict[str, str]]],
    max_new_tokens: int = 64,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> list[str]:
    """Greedy answers, one per conversation (each a list of messages ending before the answer)."""
    progress = progress or NullProgress()
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the right edge of every row
    progress.start("generate", total=len(conversations))
    prompts = [render_prompt(tokenizer, c) for c in conversations]
    answers: list[str | None] = [None] * len(prompts)
    try:
        for rows in _batches(tokenizer, prompts, batch_size, _needs_unpadded(model)):
            enc = tokenizer([prompts[r] for r in rows], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            for r, text in zip(rows, tokenizer.batch_decode(new, skip_special_tokens=True)):
                answers[r] = text.strip()
            progress.advance("generate", len(rows))
    finally:
        tokenizer.padding_side = side
        progress.finish("generate")
    return answers


def _needs_unpadded(model) -> bool:
    """Prompt tuning and P-tuning prepend virtual tokens and peft drops position ids for them, so a
    left-padded row would sit further from its prompt than in training: such rows go unpadded."""
    config = getattr(model, "active_peft_config", None)
    return bool(config and config.is_prompt_learning and config.peft_type.value != "PREFIX_TUNING")


def _batches(tokenizer, prompts: list[str], batch_size: int, same_length: bool) -> list[list[int]]:
    """Row indices per generate() call: in order, or grouped by equal token length when padding must not happen."""
    if not same_length:
        return [list(range(i, min(i + batch_size, len(prompts)))) for i in range(0, len(prompts), batch_size)]
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(tokenizer(p, add_special_tokens=False)["input_ids"]), []).append(i)
    return [rows[i : i + batch_size] for rows in by_length.values() for i in range(0, len(rows), batch_size)]
