"""The real micro-batch sizes of a run's data, for an estimate closer than the worst case."""

from __future__ import annotations

from dataclasses import dataclass

from graft.data.batching import group


@dataclass(frozen=True)
class MicroBatchSizes:
    tokens: int  # positions the model computes in the largest micro-batch (padded rows: rows x width)
    targets: int  # most loss positions in one micro-batch
    data_tokens: int  # tokens of the whole tokenized training set


def largest_micro_batch(items, batch_size: int, max_length: int, packing: bool, packed_rows: bool,
                        seed: int = 0, epochs: int = 1) -> MicroBatchSizes:
    """Walk the micro-batches of the first `epochs` epochs as the recipe groups them.

    packed_rows: examples laid end to end (graft's default); otherwise one right-padded row each.
    Classification items count one target a row.
    """
    lengths = [len(t.input_ids) for t in items]
    n_targets = [1 if t.label is not None else t.targets for t in items]
    most_tokens = most_targets = 0
    for epoch in range(epochs):
        for g in group(len(items), lengths, batch_size, max_length, packing, seed, epoch):
            size = sum(lengths[i] for i in g) if packed_rows else len(g) * max(lengths[i] for i in g)
            most_tokens = max(most_tokens, size)
            most_targets = max(most_targets, sum(n_targets[i] for i in g))
    return MicroBatchSizes(most_tokens, most_targets, sum(lengths))
