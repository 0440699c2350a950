"""One optimizer step over a window of micro-batches: backprop, or MeZO's two forward passes.

Losses are summed over targets and divided by the window's target count, so accumulation over
micro-batches of different sizes weighs every target the same (a token-weighted mean).
"""

from __future__ import annotations

import torch

from graft.train.loss import loss_sum


def _window_loss(model, batch, technique, n_targets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(plain loss share, loss share with the technique's regularizer) of one micro-batch."""
    share = len(batch.targets) / max(n_targets, 1)
    loss = loss_sum(model, batch) / max(n_targets, 1)
    if technique.regularizer is not None:  # weighted so the window adds it once
        return loss, loss + technique.regularizer(model) * share
    return loss, loss


def backprop_step(model, batches, technique, optimizer, scaler, autocast, max_grad_norm: float | None) -> tuple[float, float]:
    """Forward + backward per micro-batch, then clip and step; returns (loss, gradient norm)."""
    n_targets = sum(len(b.targets) for b in batches)
    step_loss = 0.0
    for b in batches:
        with autocast():
            plain, loss = _window_loss(model, b, technique, n_targets)
        step_loss += plain.item()
        scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
    grad_norm = clip(model, max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return step_loss, grad_norm


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


def clip(model, max_norm: float | None) -> float:
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])))
