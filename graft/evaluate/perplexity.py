"""Perplexity: exp of the mean next-token loss over the positions that carry a label."""

from __future__ import annotations

import math

from graft.train.loss import mean_loss


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))  # capped: an untrained model's exp(loss) overflows nothing useful


def evaluate_perplexity(model, items, batch_size: int = 8, progress=None, packed: bool = True, pad_id: int = 0) -> dict:
    loss = mean_loss(model, items, batch_size, progress, packed, pad_id)
    return {"loss": loss, "perplexity": perplexity(loss)}
