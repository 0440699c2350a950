"""MeZO: zeroth-order SGD from two forward passes a step (Malladi et al., 2023).

Each step draws a direction z ~ N(0, I) over the trainable parameters, measures the loss at
θ + εz and θ - εz, and moves along z by the projected gradient g = (L₊ - L₋) / 2ε. z is never
stored: it is redrawn, parameter by parameter, from a generator seeded by (seed, step) each time it
is needed, so the run needs inference memory only (no grads, no optimizer state, no parameter
copy; the largest transient is one parameter-sized z).

`MeZO` is a torch.optim.Optimizer so LR schedulers, state_dict checkpoints and the
`optimizer.step(closure)` shape all work unchanged. The closure is forward-only: it returns the
step's loss (float or 0-d tensor) and is run under torch.no_grad.

Both passes must see the same function: they start from the same RNG state (common random
numbers), so dropout draws the same masks in each and the model may stay in train mode. The
restore θ - εz + εz rounds at each add: θ comes back within about an ulp, not bit for bit (fp32
~1e-7; bf16 weights drift more, as in the paper's own runs).
"""

from __future__ import annotations

import math
from typing import Callable

import torch


class MeZO(torch.optim.Optimizer):
    """SPSA-gradient SGD. `params`: tensors or param groups (per-group "lr" and "weight_decay", as
    build_optimizer's AdamW groups); `eps` is shared by all groups (the estimate needs one scale).

    After `step`, `projected_grad` holds g (the recipe can log |g| where it logs grad_norm).
    """

    def __init__(self, params, lr: float = 1e-6, eps: float = 1e-3, weight_decay: float = 0.0, seed: int = 0):
        if eps <= 0:
            raise ValueError(f"MeZO eps must be positive, got {eps}")
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})
        self.eps, self.seed, self.steps = eps, seed, 0
        self.projected_grad = 0.0

    def _params(self):
        for group in self.param_groups:
            for p in group["params"]:
                yield group, p

    def seed_for(self, step: int) -> int:
        """The generator seed of step `step` (0-based): z of a step is randn per parameter, in group order."""
        return (self.seed * 1_000_003 + step) % (2**63)

    def _perturb(self, scale: float, update: Callable | None = None) -> None:
        """θ += scale·z for every parameter, z redrawn from this step's seed (then `update(group, p, z)`)."""
        seed = self.seed_for(self.steps)
        gens: dict[torch.device, torch.Generator] = {}
        for group, p in self._params():
            if p.device not in gens:  # one stream per device; the same parameter order gives the same z
                gens[p.device] = torch.Generator(p.device).manual_seed(seed)
            z = torch.randn(p.shape, dtype=p.dtype, device=p.device, generator=gens[p.device])
            p.add_(z, alpha=scale)
            if update is not None:
                update(group, p, z)

    @torch.no_grad()
    def step(self, closure: Callable[[], float | torch.Tensor]) -> float:  # type: ignore[override]
        """One MeZO step; returns (L₊ + L₋) / 2, the loss at θ up to O(ε²) at no extra forward."""
        if closure is None:
            raise ValueError("MeZO.step needs a closure that returns the loss (forward passes only)")
        eps = self.eps
        accel = sorted({p.device.index or 0 for _, p in self._params() if p.device.type != "cpu"})
        kind = next((p.device.type for _, p in self._params() if p.device.type != "cpu"), None)

        self._perturb(eps)
        # Both passes start from the same RNG state, so dropout (if on) draws the same masks and the
        # difference measures θ only; the second pass then leaves the RNG advanced as one forward would.
        with torch.random.fork_rng(devices=accel, device_type=kind):
            loss_plus = float(closure())
        self._perturb(-2 * eps)
        loss_minus = float(closure())

        g = (loss_plus - loss_minus) / (2 * eps)
        self.projected_grad = g
        if not math.isfinite(g):
            g = 0.0  # a nan/inf loss restores θ and skips the update; the returned loss shows it

        def update(group, p, z):
            lr, wd = group["lr"], group["weight_decay"]
            if wd:
                p.mul_(1 - lr * wd)
            p.add_(z, alpha=-lr * g)

        # restore (+εz) and update in one pass over z: three draws of z a step instead of four
        self._perturb(eps, update)
        self.steps += 1
        return (loss_plus + loss_minus) / 2

    def state_dict(self):
        sd = super().state_dict()
        sd["mezo"] = {"steps": self.steps, "seed": self.seed, "eps": self.eps}
        return sd

    def load_state_dict(self, state_dict) -> None:
        state_dict = dict(state_dict)
        own = state_dict.pop("mezo", None)
        super().load_state_dict(state_dict)
        if own is not None:
            self.steps, self.seed, self.eps = own["steps"], own["seed"], own["eps"]
