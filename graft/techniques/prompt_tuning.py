"""Prompt tuning: a few trainable embeddings prepended to every input; the model stays frozen (peft)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from graft.errors import ConfigError
from graft.techniques.peft_common import wrap
from graft.techniques.technique import ApplyContext, MemoryProfile, Settings, Technique


class PromptTuningSettings(Settings):
    virtual_tokens: int = Field(20, ge=1, description="trainable embeddings prepended to every sequence")
    init: Literal["random", "text"] = Field("random", description="start from random vectors, or from the embeddings of init_text")
    init_text: str | None = Field(None, validate_default=True, description="text whose token embeddings start the prompt (init=text)")

    @field_validator("init_text")
    @classmethod
    def _text_when_text_init(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("init") == "text" and not (v and v.strip()):
            raise ValueError("required when init is 'text' (e.g. init_text='Classify the colour:')")
        return v


def apply(model, s: PromptTuningSettings, ctx: ApplyContext):
    from peft import PromptTuningConfig

    init = {"prompt_tuning_init": "RANDOM"}
    # on the meta device (parameter counts) there are no embeddings to copy, and the count is the same
    if s.init == "text" and not next(model.parameters()).is_meta:
        if ctx.model_path is None:  # the tokenizer turns init_text into the starting embeddings
            raise ConfigError("technique init_text: init='text' needs the model folder's tokenizer; none was given")
        # peft repeats or cuts the text's tokens to fill virtual_tokens
        init = dict(prompt_tuning_init="TEXT", prompt_tuning_init_text=s.init_text, tokenizer_name_or_path=str(ctx.model_path))
    return wrap(model, PromptTuningConfig(num_virtual_tokens=s.virtual_tokens, **init), ctx)


technique = Technique(
    name="prompt-tuning",
    family="prompt",
    description="trainable virtual-token embeddings prepended to the input; random or text init",
    apply=apply,
    settings=PromptTuningSettings,
    kinds=frozenset({"causal-lm", "classification"}),
    # peft's default save/load/restore fit: the trained embedding table is all there is
    memory=lambda s: MemoryProfile(virtual_tokens=s.virtual_tokens),
    mergeable=False,  # the prompt is extra input, there is no weight to fold it into
    packs_sequences=False,  # virtual tokens go in front of each row: one example a row
)
