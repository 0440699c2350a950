"""Prefix tuning: trainable keys and values prepended in every attention layer (peft).

The prefix enters as past_key_values, so the sequence itself does not grow: each layer attends to
virtual_tokens more positions, while embeddings and MLPs see only the real tokens.
"""

from __future__ import annotations

from pydantic import Field

from graft.techniques import prompt_common
from graft.techniques.peft_common import wrap
from graft.techniques.technique import ApplyContext, MemoryProfile, Settings, Technique


class PrefixTuningSettings(Settings):
    virtual_tokens: int = Field(20, ge=1, description="key/value positions prepended in every layer")
    projection: bool = Field(False, description="produce the prefix through a trainable two-layer MLP (more stable, more parameters)")
    projection_hidden: int | None = Field(None, ge=1, description="hidden width of that MLP; default the model's hidden size")


def apply(model, s: PrefixTuningSettings, ctx: ApplyContext):
    from peft import PrefixTuningConfig

    config = PrefixTuningConfig(
        num_virtual_tokens=s.virtual_tokens, prefix_projection=s.projection,
        encoder_hidden_size=s.projection_hidden or prompt_common.hidden_size(model),
    )
    return wrap(model, config, ctx)


technique = Technique(
    name="prefix-tuning",
    family="prompt",
    description="trainable key/value prefix in every attention layer; optional MLP projection",
    apply=apply,
    settings=PrefixTuningSettings,
    kinds=frozenset({"causal-lm", "classification"}),
    save=prompt_common.save,
    restore=prompt_common.restore,  # peft's restore cannot rebuild the projection MLP
    weights_file=prompt_common.TRAINING_STATE,
    # The virtual positions exist only as keys/values in each layer (2 * layers * virtual_tokens * kv width
    # trainable or cached values), not as activations through the MLPs: counting them as full positions
    # over-estimates, which is the safe side for a short prefix.
    memory=lambda s: MemoryProfile(virtual_tokens=s.virtual_tokens),
    mergeable=False,
    packs_sequences=False,  # the prefix is per row, and packed rows would share one
)
