"""Bottleneck adapters (Houlsby / Pfeiffer): a small down-project -> nonlinearity -> up-project
block added residually after sublayer outputs of the frozen model. graft's own implementation
(peft has none), laid out as peft's tuners are: config.py, layer.py, model.py.

This module imports no torch: the registry loads it for every `graft techniques` listing.
"""

from __future__ import annotations

from graft.techniques.bottleneck.config import BottleneckSettings, memory
from graft.techniques.technique import Technique


def _lazy(name: str):
    """model.<name>, imported on first call (model.py needs torch)."""

    def call(*args):
        from graft.techniques.bottleneck import model

        return getattr(model, name)(*args)

    call.__name__ = name
    return call


technique = Technique(
    name="bottleneck",
    family="additive",
    description="small bottleneck MLPs added after attention/feed-forward outputs (Houlsby, Pfeiffer); not mergeable",
    apply=_lazy("apply"),
    settings=BottleneckSettings,
    kinds=frozenset({"causal-lm", "classification"}),
    save=_lazy("save"),
    load=_lazy("load"),
    restore=_lazy("restore"),
    weights_file="adapter_model.safetensors",
    memory=memory,
    mergeable=False,
)

__all__ = ["BottleneckSettings", "technique"]
