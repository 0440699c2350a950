"""LoHa: the weight update is the Hadamard (element-wise) product of two low-rank products,
(B1·A1) ⊙ (B2·A2), reaching rank up to r² for the parameters of two rank-r pairs (peft)."""

from __future__ import annotations

from pydantic import Field

from graft.techniques.peft_common import TargetModules, wrap
from graft.techniques.technique import ApplyContext, Settings, Technique


class LohaSettings(Settings):
    r: int = Field(8, ge=1, description="rank of each of the two low-rank pairs")
    alpha: float = Field(8, gt=0, description="scale: the update is multiplied by alpha/r")
    rank_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout over the update's rank dimension")
    module_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="chance of skipping a layer's update in a step")
    target_modules: TargetModules = Field("all-linear", description="all-linear, or module names")


def apply(model, s: LohaSettings, ctx: ApplyContext):
    from peft import LoHaConfig

    return wrap(model, LoHaConfig(r=s.r, alpha=s.alpha, rank_dropout=s.rank_dropout, module_dropout=s.module_dropout,
                                  target_modules=s.target_modules), ctx)


technique = Technique(
    name="loha",
    family="reparametrisation",
    description="low-rank Hadamard product update: two rank-r pairs multiplied element-wise",
    apply=apply,
    settings=LohaSettings,
    kinds=frozenset({"causal-lm", "classification"}),
)
