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
    answers: list[str] = []
    progress.start("generate", total=len(conversations))
    try:
        for i in range(0, len(conversations), batch_size):
            prompts = [render_prompt(tokenizer, c) for c in conversations[i : i + batch_size]]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = out[:, enc["input_ids"].shape[1] :]
            answers += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
            progress.advance("generate", len(prompts))
    finally:
        tokenizer.padding_side = side
        progress.finish("generate")
    return answers
