"""Losses computed only where there is a target.

Packed rows: logits are produced only at positions that carry a label (transformers'
`logits_to_keep` takes an index tensor), so prompt tokens cost no lm_head matmul; where the head
is a plain linear layer the loss goes through graft.train.head_loss, which never keeps the
vocab-sized logits at all. Each packed example's span (`cu_seq_lens_q`) goes to the attention, so
graft's packed SDPA (graft.train.attention) or flash-attention attends within examples only. Padded rows (prompt methods): the model may prepend virtual positions,
so the last T logits are the ones that line up with the input. Classification: one class a row.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from graft.data.batching import Batch, flatten, pad
from graft.train.head_loss import head_cross_entropy, plain_head


def _device(model) -> torch.device:
    return next(model.parameters()).device


def forward_logits(model, batch: Batch) -> torch.Tensor:
    """[K, V] logits for the batch's K targets (or [B, C] class logits)."""
    device = _device(model)
    if batch.classify:
        out = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device))
        return out.logits.float()
    if batch.attention_mask is None:
        out = model(**_packed_inputs(batch, device), logits_to_keep=batch.target_positions.to(device))
        return out.logits[0].float()
    width = batch.input_ids.shape[1]
    out = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device), use_cache=False)
    logits = out.logits[:, -width:]
    return logits[batch.target_rows.to(device), batch.target_positions.to(device)].float()


def _packed_inputs(batch: Batch, device) -> dict:
    spans = batch.cu_seq_lens.to(device)
    longest = int((batch.cu_seq_lens[1:] - batch.cu_seq_lens[:-1]).max())
    return {"input_ids": batch.input_ids.to(device), "position_ids": batch.position_ids.to(device),
            "use_cache": False,  # a cache would disable the packed-sequence mask
            "cu_seq_lens_q": spans, "cu_seq_lens_k": spans, "max_length_q": longest, "max_length_k": longest}


def loss_sum(model, batch: Batch) -> torch.Tensor:
    """Summed cross-entropy over the batch's targets (divide by the window's target count)."""
    device = _device(model)
    parts = plain_head(model) if batch.position_ids is not None and not batch.classify else None
    if parts is not None:
        decoder, head = parts
        hidden = decoder(**_packed_inputs(batch, device)).last_hidden_state[0]
        return head_cross_entropy(hidden[batch.target_positions.to(device)], head.weight, batch.targets.to(device))
    return F.cross_entropy(forward_logits(model, batch), batch.targets.to(device), reduction="sum")


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))  # capped: an untrained model's exp(loss) overflows nothing useful


def make_batch(items, packed: bool, pad_id: int) -> Batch:
    return flatten(items) if packed else pad(items, pad_id)


def evaluate_items(model, items, batch_size: int = 8, progress=None, packed: bool = True, pad_id: int = 0) -> dict:
    """Mean loss over every target of `items`; for classification also accuracy and F1."""
    return eval_scores(eval_sums(model, items, batch_size, progress, packed, pad_id))


def eval_scores(sums: dict) -> dict:
    """{loss, (accuracy, F1)} from eval_sums' totals (added up over several processes, or not)."""
    from graft.evaluate.metrics import classification_scores

    out = {"loss": sums["total"] / max(sums["count"], 1)}
    if sums["gold"]:
        out.update(classification_scores(sums["preds"], sums["gold"]))
    return out


@torch.no_grad()
def eval_sums(model, items, batch_size: int = 8, progress=None, packed: bool = True, pad_id: int = 0) -> dict:
    """The summed loss and target count over `items` (and class predictions with their gold labels)."""
    was_training = model.training
    model.eval()
    total, count, preds, gold = 0.0, 0, [], []
    if progress:
        progress.start("eval", total=len(items))
    for i in range(0, len(items), batch_size):
        batch = make_batch(items[i : i + batch_size], packed, pad_id)
        count += len(batch.targets)
        if not batch.classify:
            total += loss_sum(model, batch).item()
        else:
            logits = forward_logits(model, batch)
            targets = batch.targets.to(logits.device)
            total += F.cross_entropy(logits, targets, reduction="sum").item()
            preds += logits.argmax(-1).tolist()
            gold += targets.tolist()
        if progress:
            progress.advance("eval", batch.examples)
    if progress:
        progress.finish("eval")
    model.train(was_training)
    return {"total": total, "count": count, "preds": preds, "gold": gold}


def mean_loss(model, items, batch_size: int = 8, progress=None, packed: bool = True, pad_id: int = 0) -> float:
    return evaluate_items(model, items, batch_size, progress, packed, pad_id)["loss"]
