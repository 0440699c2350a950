"""LoKr: the weight update is a Kronecker product W1 ⊗ W2 of a small matrix and a (low-rank
factored) larger one, so a few parameters span the whole weight (peft)."""

from __future__ import annotations

from pydantic import Field, field_validator

from graft.techniques.loha import LohaSettings
from graft.techniques.peft_common import wrap
from graft.techniques.technique import ApplyContext, Technique


class LokrSettings(LohaSettings):
    """LoHa's options (r: rank of the low-rank factors) plus how the Kronecker factors are shaped."""

    decompose_factor: int = Field(-1, description="size of the small Kronecker factor; -1: near the square root")
    decompose_both: bool = Field(False, description="factor the small Kronecker factor into low rank too")

    @field_validator("decompose_factor")
    @classmethod
    def _factor(cls, v: int) -> int:
        if v == 0 or v < -1:
            raise ValueError("decompose_factor must be -1 or a positive size")
        return v


def apply(model, s: LokrSettings, ctx: ApplyContext):
    from peft import LoKrConfig

    return wrap(model, LoKrConfig(r=s.r, alpha=s.alpha, rank_dropout=s.rank_dropout, module_dropout=s.module_dropout,
                                  target_modules=s.target_modules, decompose_factor=s.decompose_factor,
                                  decompose_both=s.decompose_both), ctx)


technique = Technique(
    name="lokr",
    family="reparametrisation",
    description="Kronecker product update: a small matrix times a low-rank factored larger one",
    apply=apply,
    settings=LokrSettings,
    kinds=frozenset({"causal-lm", "classification"}),
)
