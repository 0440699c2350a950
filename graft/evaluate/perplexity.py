"""Perplexity: exp of the mean next-token loss over the positions that carry a label."""

from __future__ import annotations

from graft.train.loss import mean_loss, perplexity


def evaluate_perplexity(model, items, batch_size: int = 8, progress=None, packed: bool = True, pad_id: int = 0) -> dict:
    loss = mean_loss(model, items, batch_size, progress, packed, pad_id)
    return {"loss": loss, "perplexity": perplexity(loss)}
