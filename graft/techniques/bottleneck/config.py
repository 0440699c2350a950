"""Bottleneck-adapter options, where adapters go in known architectures, and the memory profile."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from graft.techniques.technique import MemoryProfile, Settings


class BottleneckSettings(Settings):
    style: Literal["houlsby", "pfeiffer"] = Field(
        "houlsby", description="houlsby: after attention and feed-forward outputs; pfeiffer: after feed-forward only")
    size: int = Field(64, ge=1, description="bottleneck width (the down-projection's outputs)")
    activation: Literal["relu", "gelu", "silu"] = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout on the bottleneck activations")
    targets: list[str] | None = Field(
        None, min_length=1, description="module-name suffixes to put an adapter after, instead of the style's insertion points")


# Architecture families: (attention-output, feed-forward-output) module-name patterns, each matched
# at the end of a full name on a dot boundary. The first family any module matches is the model's,
# so a family's patterns never mix with another's (OPT's `fc2` is also Phi's feed-forward output).
FAMILIES: dict[str, tuple[str, str]] = {
    "llama-style": (r"self_attn\.o_proj", r"mlp\.down_proj"),  # Llama, Mistral, Qwen, Gemma, Phi-3, SmolLM
    "bert-style": (r"attention\.output\.dense", r"layer\.\d+\.output\.dense"),  # BERT, RoBERTa, ELECTRA
    "gpt2": (r"attn\.c_proj", r"mlp\.c_proj"),
    "distilbert": (r"attention\.out_lin", r"ffn\.lin2"),
    "gpt-neox": (r"(self_)?attention\.dense", r"mlp\.dense_4h_to_h"),  # Pythia, Falcon
    "phi": (r"self_attn\.dense", r"mlp\.fc2"),
    "opt": (r"self_attn\.out_proj", r"fc2"),
}


def insertion_points(names: list[str], s: BottleneckSettings) -> list[str]:
    """The module names (in model order) whose outputs get an adapter; empty when nothing matches."""
    if s.targets:
        return [n for n in names if any(n == t or n.endswith("." + t) for t in s.targets)]
    for attention, feed_forward in FAMILIES.values():
        patterns = [feed_forward] if s.style == "pfeiffer" else [attention, feed_forward]
        found = [n for n in names if any(re.search(rf"(^|\.){p}$", n) for p in patterns)]
        if found:
            return found
    return []


def memory(s: BottleneckSettings) -> MemoryProfile:
    # Each adapter keeps its input h (d-wide) for the down-projection's weight gradient, plus two
    # size-wide tensors (pre- and post-activation). A transformer layer already keeps roughly 17
    # d-wide values a token for backward, so with size << d each adapter adds about 1/17 ~ 6%;
    # Houlsby has two a layer, Pfeiffer one. LoRA's own extra activations are rank-wide, i.e. small.
    per_layer = 1 if s.style == "pfeiffer" else 2
    return MemoryProfile(activation_factor=1.0 + 0.06 * per_layer)
