"""Micro-batches without padding.

Each micro-batch is its examples laid end to end in one row, with position ids restarting at every
example. transformers builds a block-diagonal causal mask from those position ids (when no
attention mask and no cache are passed), so no token attends across examples and no compute is
spent on padding. Labels are shifted here, once, so the loss needs no per-row bookkeeping.

Techniques that add positions to every sequence (prompt tuning and friends) and classification
need one example a row: `pad` right-pads those, and still counts only the real tokens.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from graft.data.tokenize import IGNORE, Tokenized


@dataclass
class Batch:
    input_ids: torch.Tensor  # [1, T] packed, or [B, T] padded
    position_ids: torch.Tensor | None  # [1, T] packed; None when padded
    targets: torch.Tensor  # [K] next-token ids at the positions that carry a loss (class ids: [B])
    target_positions: torch.Tensor  # [K] positions whose logits predict `targets`
    tokens: int  # real tokens, padding excluded
    examples: int
    attention_mask: torch.Tensor | None = None  # [B, T] padded rows only
    target_rows: torch.Tensor | None = None  # [K] row of each target, padded rows only
    classify: bool = False  # targets are class ids, one per row
    cu_seq_lens: torch.Tensor | None = None  # [examples + 1] start offsets of the packed examples, then T


def flatten(items: list[Tokenized]) -> Batch:
    ids, pos, targets, where, starts = [], [], [], [], []
    for item in items:
        offset = len(ids)
        starts.append(offset)
        ids += item.input_ids
        pos += range(len(item.input_ids))
        # position j predicts token j+1 of the same example
        for j in range(len(item.input_ids) - 1):
            if item.labels[j + 1] != IGNORE:
                targets.append(item.labels[j + 1])
                where.append(offset + j)
    return Batch(
        input_ids=torch.tensor([ids]),
        position_ids=torch.tensor([pos]),
        targets=torch.tensor(targets),
        target_positions=torch.tensor(where),
        tokens=len(ids),
        examples=len(items),
        cu_seq_lens=torch.tensor(starts + [len(ids)], dtype=torch.int32),
    )


def group(n_items: int, lengths: list[int], batch_size: int, max_length: int, packing: bool,
          seed: int, epoch: int) -> list[list[int]]:
    """Indices of each micro-batch for one epoch: shuffled by (seed, epoch), so a resume sees the same order.

    Without packing a micro-batch holds `batch_size` examples; with packing it holds as many as
    fit in `batch_size * max_length` tokens.
    """
    order = list(range(n_items))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    if not packing:
        return [order[i : i + batch_size] for i in range(0, n_items, batch_size)]
    budget, groups, current, used = batch_size * max_length, [], [], 0
    for i in order:
        if current and used + lengths[i] > budget:
            groups.append(current)
            current, used = [], 0
        current.append(i)
        used += lengths[i]
    if current:
        groups.append(current)
    return groups


def pad(items: list[Tokenized], pad_id: int) -> Batch:
    """One example a row, right-padded; for classification items the targets are their labels."""
    width = max(len(t.input_ids) for t in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    targets, rows, where = [], [], []
    for r, item in enumerate(items):
        n = len(item.input_ids)
        ids[r, :n] = torch.tensor(item.input_ids)
        mask[r, :n] = 1
        if item.label is not None:
            continue
        for j in range(n - 1):
            if item.labels[j + 1] != IGNORE:
                targets.append(item.labels[j + 1])
                rows.append(r)
                where.append(j)
    classify = items[0].label is not None
    return Batch(
        input_ids=ids,
        position_ids=None,
        targets=torch.tensor([t.label for t in items] if classify else targets, dtype=torch.long),
        target_positions=torch.tensor(where, dtype=torch.long),
        tokens=int(mask.sum()),
        examples=len(items),
        attention_mask=mask,
        target_rows=torch.tensor(rows, dtype=torch.long),
        classify=classify,
    )
