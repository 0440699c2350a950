"""One optimizer step over a window of micro-batches: backprop, or MeZO's two forward passes.

Losses are summed over targets and divided by the window's target count, so accumulation over
micro-batches of different sizes weighs every target the same (a token-weighted mean). With
several processes the count is the whole step's, over every process, and each loss is scaled by the
number of processes, since the strategies average gradients: the step's gradient is then exactly
that of one process running the whole window.
"""

from __future__ import annotations

import torch

from graft.train.loss import loss_sum
from graft.train.parallel import Single


def _window_loss(model, batch, technique, n_targets: int, regularized=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(plain loss share, loss share with the technique's regularizer) of one micro-batch.

    `regularized` is the model the regularizer reads (the unwrapped one, under DDP or DeepSpeed)."""
    share = len(batch.targets) / max(n_targets, 1)
    loss = loss_sum(model, batch) / max(n_targets, 1)
    if technique.regularizer is not None:  # weighted so the window adds it once
        return loss, loss + technique.regularizer(regularized if regularized is not None else model) * share
    return loss, loss


def backprop_step(model, batches, technique, optimizer, scaler, autocast, max_grad_norm: float | None,
                  strategy=None, n_targets: int | None = None) -> tuple[float, float]:
    """Forward + backward per micro-batch, then clip and step; returns (this process's share of the
    loss, gradient norm). `n_targets`: the step's targets over every process (default: these batches')."""
    strategy = strategy or Single()
    n_targets = n_targets or sum(len(b.targets) for b in batches)
    scale = strategy.world.size
    step_loss = 0.0
    for i, b in enumerate(batches):
        with strategy.sync_grads(model, last=i == len(batches) - 1):
            with autocast():  # the forward only: backward runs in the dtypes the forward chose
                plain, loss = _window_loss(model, b, technique, n_targets, strategy.inner(model))
            step_loss += plain.item()
            strategy.backward(model, loss * scale if scale > 1 else loss, scaler)
    return step_loss, strategy.step(model, optimizer, scaler, max_grad_norm)


def mezo_step(model, batches, technique, optimizer) -> tuple[float, float]:
    """MeZO: the optimizer perturbs the weights and calls `window` twice; no backward, no gradients.

    Returns (loss, |projected gradient|): the loss is the mean of the two perturbed losses, which
    equals the loss at the weights up to a term of order eps^2.
    """
    n_targets = sum(len(b.targets) for b in batches)

    def window() -> float:
        return sum(_window_loss(model, b, technique, n_targets)[1].item() for b in batches)

    loss = optimizer.step(window)
    return float(loss), abs(float(optimizer.projected_grad))


