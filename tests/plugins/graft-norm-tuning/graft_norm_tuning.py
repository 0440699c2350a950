"""Norm tuning: train only the scale (and shift) vectors of the model's normalisation layers.

A selective technique in one module, written the way a third party would: it imports graft's
public technique API only and keeps its own save format (one safetensors file).
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import Field

from graft.techniques import MemoryProfile, Settings, Technique

WEIGHTS = "norm_weights.safetensors"


class NormSettings(Settings):
    include_final: bool = Field(True, description="also train the norm before the output head")


def _norm_names(model, settings: NormSettings) -> list[str]:
    names = []
    for name, module in model.named_modules():
        kind = type(module).__name__.lower()
        if "norm" in kind and any(True for _ in module.parameters(recurse=False)):
            if settings.include_final or "layers." in name or "layer." in name:
                names.append(name)
    return names


def apply(model, settings: NormSettings, ctx):
    model.requires_grad_(False)
    for name in _norm_names(model, settings) + list(ctx.head):
        model.get_submodule(name).requires_grad_(True)
    return model


def save(model, folder: Path) -> None:
    from safetensors.torch import save_file

    trained = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trained, str(folder / WEIGHTS))


def restore(model, folder: Path) -> None:
    from safetensors.torch import load_file

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in load_file(str(folder / WEIGHTS)).items():
            params[name].copy_(value)


def load(base, folder: Path, settings: NormSettings):
    restore(base, folder)
    return base


technique = Technique(
    name="norm-tuning",
    family="selective",
    description="trains only the normalisation layers (example plugin)",
    apply=apply,
    settings=NormSettings,
    kinds=frozenset({"causal-lm", "classification"}),
    save=save,
    load=load,
    restore=restore,
    weights_file=WEIGHTS,
    memory=lambda s: MemoryProfile(),
    mergeable=False,
)
