"""AdaLoRA: LoRA in SVD form (B·diag(E)·A) whose rank budget shrinks during training: the least
important singular triplets, by a smoothed gradient-times-weight score, are masked to zero (peft)."""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager

import torch
from pydantic import Field, model_validator

from graft.errors import ConfigError
from graft.techniques.peft_common import TargetModules, wrap
from graft.techniques.technique import ApplyContext, Settings, Technique


class AdaLoraSettings(Settings):
    init_r: int = Field(12, ge=1, description="rank every adapted layer starts with")
    target_r: int = Field(8, ge=1, description="mean rank per layer once the budget has shrunk")
    alpha: float = Field(32, gt=0, description="scale: the update is multiplied by alpha/init_r")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: TargetModules = Field("all-linear", description="all-linear, or module names")
    tinit: int | None = Field(None, ge=0, description="steps at full rank before pruning; default 10% of the run")
    tfinal: int | None = Field(None, ge=0, description="last steps at the final budget; default 20% of the run")
    delta_t: int | None = Field(None, ge=1, description="steps between budget reallocations; default 5% of the run")
    orth_reg_weight: float = Field(0.5, ge=0.0, description="weight of the orthogonality penalty on A and B")
    beta1: float = Field(0.85, gt=0.0, lt=1.0, description="smoothing of the importance score")
    beta2: float = Field(0.85, gt=0.0, lt=1.0, description="smoothing of the importance uncertainty")

    @model_validator(mode="after")
    def _budget_shrinks(self) -> "AdaLoraSettings":
        if self.target_r > self.init_r:
            raise ValueError(f"target_r ({self.target_r}) must not exceed init_r ({self.init_r})")
        return self


def apply(model, s: AdaLoraSettings, ctx: ApplyContext):
    from peft import AdaLoraConfig

    # Defaults scale with the run so that short runs still get a pruning phase (peft needs tinit + tfinal < steps).
    total = ctx.total_steps
    tinit = total // 10 if s.tinit is None else s.tinit
    tfinal = total // 5 if s.tfinal is None else s.tfinal
    if tinit + tfinal >= total:
        raise ConfigError(f"adalora: tinit ({tinit}) + tfinal ({tfinal}) must be below the run's {total} optimizer "
                          "steps, to leave steps for the rank budget to shrink")
    config = AdaLoraConfig(
        init_r=s.init_r, target_r=s.target_r, lora_alpha=s.alpha, lora_dropout=s.dropout,
        target_modules=s.target_modules, tinit=tinit, tfinal=tfinal, deltaT=s.delta_t or max(1, total // 20),
        beta1=s.beta1, beta2=s.beta2, orth_reg_weight=s.orth_reg_weight, total_step=total,
    )
    return wrap(model, config, ctx)


def on_step(model, step: int) -> None:
    tuner, config = model.base_model, model.peft_config[model.active_adapter]
    # A run too short to score any triplet before the final phase keeps its full rank (peft would fail).
    final = step >= config.total_step - config.tfinal
    if final and config.rank_pattern is None and not tuner.rankallocator.exp_avg_ipt:
        return
    tuner.update_and_allocate(step)  # importance from this step's gradients, then the mask


def orthogonality(model) -> torch.Tensor:
    """The paper's penalty keeping P (=B) and Q (=A) near-orthonormal, so that E holds the singular values:
    mean over factors of ||PᵀP - I||²_F and ||QQᵀ - I||²_F, times orth_reg_weight."""
    from peft.tuners.adalora import AdaLoraLayer

    gaps = []
    for layer in model.modules():
        if isinstance(layer, AdaLoraLayer):
            for a, b in ((layer.lora_A[k], layer.lora_B[k]) for k in layer.lora_A if layer.lora_A[k].requires_grad):
                for gram in (a @ a.T, b.T @ b):
                    gaps.append((gram - torch.eye(len(gram), device=gram.device, dtype=gram.dtype)).pow(2).sum())
    weight = model.peft_config[model.active_adapter].orth_reg_weight
    return weight * torch.stack(gaps).mean() if gaps else torch.zeros(())


@contextmanager
def _no_false_alarms():
    """peft's warnings that do not apply to AdaLoRA: a layer pruned to rank 0 looks to it like an ungathered
    DeepSpeed shard, and the saved rank masks like LoRA's per-module ranks that match no module."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(LoRA tensor\(s\) have invalid shape|rank_pattern keys did not)")
        yield


def save(model, folder) -> None:
    with _no_false_alarms():
        model.save_pretrained(folder)


def load(base, folder, s: AdaLoraSettings):
    from peft import PeftModel

    with _no_false_alarms():
        return PeftModel.from_pretrained(base, folder)


def restore(model, folder) -> None:
    """Resume: a checkpoint holds only the ranks kept so far; put them back in place in the full-rank
    parameters (the optimizer holds those), zeros elsewhere, and go on masking with the saved pattern."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(folder / "adapter_model.safetensors")
    pattern = json.loads((folder / "adapter_config.json").read_text()).get("rank_pattern") or {}
    live, adapter = dict(model.named_parameters()), model.active_adapter
    for key, saved in weights.items():
        prefix, factor = key.rsplit(".", 1)
        kept = pattern.get(prefix.removeprefix("base_model.model.") + ".lora_E")
        if kept is not None and factor in ("lora_A", "lora_B", "lora_E"):
            full, kept = torch.zeros_like(live[f"{key}.{adapter}"]), torch.tensor(kept, dtype=torch.bool)
            if factor == "lora_B":  # B holds its ranks as columns, A and E as rows
                full.T[kept] = saved.T
            else:
                full[kept] = saved
            weights[key] = full
    set_peft_model_state_dict(model, weights)
    if pattern:  # only now: peft resizes the modules when it loads with a pattern set
        model.peft_config[adapter].rank_pattern = pattern


technique = Technique(
    name="adalora",
    family="reparametrisation",
    description="LoRA in SVD form whose rank budget is reallocated to the most important layers during training",
    apply=apply,
    settings=AdaLoraSettings,
    kinds=frozenset({"causal-lm", "classification"}),
    save=save,
    load=load,
    restore=restore,
    on_step=on_step,
    regularizer=orthogonality,
)
