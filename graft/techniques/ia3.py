"""(IA)³: learned vectors that rescale the outputs of chosen layers (attention keys and values) or,
for feed-forward layers, their inputs; the base weights stay frozen (peft)."""

from __future__ import annotations

from pydantic import Field

from graft.errors import ConfigError
from graft.techniques.peft_common import TargetModules, wrap
from graft.techniques.technique import ApplyContext, Settings, Technique


class IA3Settings(Settings):
    target_modules: TargetModules | None = Field(
        None, min_length=1, description="names, a regex or all-linear; default: peft's per architecture")
    feedforward_modules: list[str] | None = Field(
        None, description="targets rescaled at their input, not output; default: peft's per architecture")
    init_ia3_weights: bool = Field(True, description="start the vectors at 1, so training starts from the base model")


def apply(model, s: IA3Settings, ctx: ApplyContext):
    from peft import IA3Config
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS

    model_type = getattr(model.config, "model_type", None)
    targets = s.target_modules or TARGETS.get(model_type)
    if not targets:
        raise ConfigError(f"ia3: peft has no default target_modules for {model_type!r} models; set target_modules "
                          "(e.g. the attention key/value projections and the feed-forward output projection)")
    feedforward = s.feedforward_modules
    if feedforward is None:  # the architecture's feed-forward layers, those that are targeted
        feedforward = [m for m in FEEDFORWARD.get(model_type, []) if isinstance(targets, str) or m in targets]
    elif not isinstance(targets, str) and not set(feedforward) <= set(targets):
        outside = sorted(set(feedforward) - set(targets))
        raise ConfigError(f"ia3: feedforward_modules {outside} are not in target_modules {sorted(targets)}")
    config = IA3Config(target_modules=targets if isinstance(targets, str) else list(targets),
                       feedforward_modules=list(feedforward), init_ia3_weights=s.init_ia3_weights)
    return wrap(model, config, ctx)


technique = Technique(
    name="ia3",
    family="additive",
    description="learned vectors rescaling attention keys/values and feed-forward activations",
    apply=apply,
    settings=IA3Settings,
    kinds=frozenset({"causal-lm", "classification"}),
)
