"""VeRA: one pair of frozen random projections shared by every adapted layer; each layer trains only
two scaling vectors, d (r) and b (output size), for an update diag(b)·B·diag(d)·A (peft)."""

from __future__ import annotations

from pydantic import Field

from graft.techniques.peft_common import TargetModules, wrap
from graft.techniques.technique import ApplyContext, Settings, Technique


class VeraSettings(Settings):
    r: int = Field(256, ge=1, description="rank of the shared random projections (cheap: they are frozen)")
    # peft sizes the shared projections to the largest targeted layer and slices them for smaller
    # ones, so layers of different shapes (all-linear) can be mixed.
    target_modules: TargetModules = Field("all-linear", description="all-linear, or module names")
    d_initial: float = Field(0.1, gt=0, description="initial value of the d vectors (b starts at 0)")
    projection_prng_key: int = Field(0, ge=0, description="seed of the shared random projections")
    save_projection: bool = Field(True, description="save the projections with the adapter, so a reload is exact "
                                  "on any machine (else they are regenerated from the seed)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


def apply(model, s: VeraSettings, ctx: ApplyContext):
    from peft import VeraConfig

    return wrap(model, VeraConfig(r=s.r, target_modules=s.target_modules, d_initial=s.d_initial, vera_dropout=s.dropout,
                                  projection_prng_key=s.projection_prng_key, save_projection=s.save_projection), ctx)


technique = Technique(
    name="vera",
    family="reparametrisation",
    description="shared frozen random projections; each layer trains two small scaling vectors",
    apply=apply,
    settings=VeraSettings,
    kinds=frozenset({"causal-lm", "classification"}),
)
