"""DoRA: LoRA with weight decomposition. Each targeted weight is split into a per-output-channel
magnitude (a trainable vector) and a direction updated by LoRA's low-rank B·A (peft, use_dora)."""

from __future__ import annotations

from graft.techniques.lora import LoraSettings, lora_config
from graft.techniques.peft_common import wrap
from graft.techniques.technique import ApplyContext, MemoryProfile, Technique


def apply(model, s: LoraSettings, ctx: ApplyContext):
    return wrap(model, lora_config(s, use_dora=True), ctx)


def memory(s: LoraSettings) -> MemoryProfile:
    # Beyond LoRA, every adapted layer keeps its base output and its LoRA output for the magnitude's
    # gradient, and rebuilds W + s·B·A each step to take its column norms: some more activation memory.
    return MemoryProfile(activation_factor=1.3)


technique = Technique(
    name="dora",
    family="reparametrisation",
    description="LoRA with weight decomposition: a trainable magnitude per output channel, a low-rank direction update",
    apply=apply,
    settings=LoraSettings,
    kinds=frozenset({"causal-lm", "classification"}),
    memory=memory,
)
