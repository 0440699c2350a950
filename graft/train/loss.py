"""Next-token loss computed only where there is a target.

Logits are produced only at positions that carry a label (transformers' `logits_to_keep` takes
an index tensor), so prompt tokens cost no lm_head matmul and no vocab-sized activations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from graft.data.batching import Batch


def loss_sum(model, batch: Batch) -> torch.Tensor:
    """Summed cross-entropy over the batch's targets (divide by the window's target count)."""
    device = next(model.parameters()).device
    out = model(
        input_ids=batch.input_ids.to(device),
        position_ids=batch.position_ids.to(device),
        use_cache=False,  # a cache would disable the packed-sequence mask
        logits_to_keep=batch.target_positions.to(device),
    )
    logits = out.logits[0].float()
    return F.cross_entropy(logits, batch.targets.to(device), reduction="sum")


@torch.no_grad()
def mean_loss(model, items, batch_size: int = 8, progress=None) -> float:
    """Mean next-token loss over every target of `items` (tokenized examples)."""
    from graft.data.batching import flatten

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    if progress:
        progress.start("eval", total=len(items))
    for i in range(0, len(items), batch_size):
        batch = flatten(items[i : i + batch_size])
        total += loss_sum(model, batch).item()
        count += len(batch.targets)
        if progress:
            progress.advance("eval", batch.examples)
    if progress:
        progress.finish("eval")
    model.train(was_training)
    return total / max(count, 1)
