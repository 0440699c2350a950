"""LoRA: a trainable low-rank update B·A beside each targeted frozen linear layer (peft)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from graft.techniques.peft_common import TargetModules, wrap
from graft.techniques.technique import ApplyContext, Settings, Technique


class LoraSettings(Settings):
    r: int = Field(8, ge=1, description="rank of the update")
    alpha: float = Field(16, gt=0, description="scale: the update is multiplied by alpha/r (alpha/sqrt(r) with rslora)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: TargetModules = Field("all-linear", description="all-linear, or module names")
    rslora: bool = Field(False, description="rank-stabilised scaling alpha/sqrt(r)")
    bias: Literal["none", "all", "lora_only"] = "none"


def lora_config(s: LoraSettings, **extra):
    from peft import LoraConfig

    return LoraConfig(
        r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=s.target_modules,
        use_rslora=s.rslora, bias=s.bias, **extra,
    )


def apply(model, s: LoraSettings, ctx: ApplyContext):
    return wrap(model, lora_config(s), ctx)


technique = Technique(
    name="lora",
    family="reparametrisation",
    description="low-rank updates beside frozen linear layers; rslora option",
    apply=apply,
    settings=LoraSettings,
)
