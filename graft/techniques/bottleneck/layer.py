"""The adapter module and the forward hook that adds it after a sublayer."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


class Bottleneck(nn.Module):
    """h -> h + up(dropout(act(down(h)))); `up` starts at zero, so a new adapter is the identity."""

    def __init__(self, width: int, size: int, activation: str = "relu", dropout: float = 0.0,
                 device=None, dtype=None):
        super().__init__()
        self.down = nn.Linear(width, size, device=device, dtype=dtype)
        self.act = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.up = nn.Linear(size, width, device=device, dtype=dtype)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # The adapter may be float32 beside a half-precision base: compute in its dtype, add in h's.
        x = h.to(self.down.weight.dtype)
        return h + self.up(self.dropout(self.act(self.down(x)))).to(h.dtype)


class Adapters(nn.Module):
    """Every adapter of a model, keyed by its insertion point, plus what saving and switching need.

    Registered on the model as one attribute, so parameters(), .to() and the optimizer see the
    adapters while the base model's own modules and state-dict keys stay as they were.
    """

    def __init__(self, points: list[str], head: list[str]):
        super().__init__()
        self.points = list(points)  # module names, in model order
        self.head = list(head)  # task-head modules trained and saved alongside
        self.enabled = True
        self.adapters = nn.ModuleDict()
        self.options: dict = {}  # the BottleneckSettings it was built with
        self.handles: list = []

    @staticmethod
    def key(point: str) -> str:
        return point.replace(".", "-")  # ModuleDict keys cannot hold dots


class Hook:
    """Forward hook replacing a sublayer's output by adapter(output) while the adapters are on.

    A callable object rather than a closure: copy.deepcopy(model) then points the copy's hooks at
    the copy's adapters, not the original's.
    """

    def __init__(self, adapter: Bottleneck, owner: Adapters):
        self.adapter, self.owner = adapter, owner

    def __call__(self, module, args, output):
        if not self.owner.enabled:
            return None  # None keeps the output as it is
        if isinstance(output, tuple):
            return (self.adapter(output[0]), *output[1:])
        return self.adapter(output)
