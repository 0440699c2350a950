"""P-tuning: virtual-token embeddings produced by a small trainable encoder (MLP or LSTM), prepended to the input (peft)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from graft.techniques import prompt_common
from graft.techniques.peft_common import wrap
from graft.techniques.technique import ApplyContext, MemoryProfile, Settings, Technique


class PTuningSettings(Settings):
    virtual_tokens: int = Field(20, ge=1, description="virtual tokens prepended to every sequence")
    encoder: Literal["mlp", "lstm"] = Field("mlp", description="network that produces the virtual tokens")
    encoder_hidden: int | None = Field(None, ge=1, description="encoder width; default the model's hidden size")
    encoder_layers: int = Field(2, ge=1, description="LSTM layers (the MLP always has 3 linear layers)")
    encoder_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout between LSTM layers")

    @model_validator(mode="after")
    def _lstm_only(self):
        # peft's MLP has a fixed depth and no dropout: refuse settings it would silently ignore
        if self.encoder == "mlp" and (self.encoder_layers != 2 or self.encoder_dropout):
            raise ValueError("encoder_layers and encoder_dropout apply to encoder='lstm' only (the MLP has 3 fixed layers, no dropout)")
        return self


def apply(model, s: PTuningSettings, ctx: ApplyContext):
    from peft import PromptEncoderConfig

    config = PromptEncoderConfig(
        num_virtual_tokens=s.virtual_tokens, encoder_reparameterization_type=s.encoder.upper(),
        encoder_hidden_size=s.encoder_hidden or prompt_common.hidden_size(model),
        encoder_num_layers=s.encoder_layers, encoder_dropout=s.encoder_dropout,
    )
    return wrap(model, config, ctx)


technique = Technique(
    name="p-tuning",
    family="prompt",
    description="virtual tokens produced by a trainable MLP or LSTM encoder, prepended to the input",
    apply=apply,
    settings=PTuningSettings,
    kinds=frozenset({"causal-lm", "classification"}),
    save=prompt_common.save,  # saved for inference: the encoder's output; for resume: the encoder itself
    restore=prompt_common.restore,
    weights_file=prompt_common.TRAINING_STATE,
    memory=lambda s: MemoryProfile(virtual_tokens=s.virtual_tokens),
    mergeable=False,
    packs_sequences=False,
)
