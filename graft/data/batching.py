"""Micro-batches without padding.

Each micro-batch is its examples laid end to end in one row, with position ids restarting at every
example. transformers builds a block-diagonal causal mask from those position ids (when no
attention mask and no cache are passed), so no token attends across examples and no compute is
spent on padding. Labels are shifted here, once, so the loss needs no per-row bookkeeping.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from graft.data.tokenize import IGNORE, Tokenized


@dataclass
class Batch:
    input_ids: torch.Tensor  # [1, T]
    position_ids: torch.Tensor  # [1, T]
    targets: torch.Tensor  # [K] next-token ids at the positions that carry a loss
    target_positions: torch.Tensor  # [K] positions in the row whose logits predict `targets`
    tokens: int  # real tokens in the row (all of them: there is no padding)
    examples: int


def flatten(items: list[Tokenized]) -> Batch:
    ids, pos, targets, where = [], [], [], []
    for item in items:
        offset = len(ids)
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
