"""LoRA: trainable low-rank updates beside frozen linear layers (peft)."""

from __future__ import annotations

from graft.techniques.registry import Technique, register


def apply(model, cfg):
    from peft import LoraConfig, TaskType, get_peft_model

    s = cfg.lora
    config = LoraConfig(
        r=s.r,
        lora_alpha=s.alpha,
        lora_dropout=s.dropout,
        target_modules=s.target_modules,
        task_type=TaskType.CAUSAL_LM,
    )
    return get_peft_model(model, config)


register(Technique("lora", "reparametrisation", apply, "low-rank adapters on linear layers (peft)"))
