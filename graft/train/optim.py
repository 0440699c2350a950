"""Optimizer and learning-rate schedule.

`train.optimizer` picks the update rule; every one gets the same two parameter groups (weight decay
on matrices, none on biases and norms). MeZO is not a torch optimizer: the recipe runs it itself.
"""

from __future__ import annotations

import math

import torch

from graft.config import TrainConfig
from graft.errors import ConfigError

BNB_MINIMUM = "0.48"  # the first bitsandbytes whose 8-bit optimizers also run on CPU


def param_groups(model, weight_decay: float) -> list[dict]:
    """Trainable parameters split into decay (matrices) and no-decay (biases, norms, 1-d tensors)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    name = cfg.optimizer
    if name == "adamw":
        # one fused kernel over every tensor (CPU and CUDA): a few % of a LoRA step on CPU
        fused = all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for g in groups for p in g["params"])
        return torch.optim.AdamW(groups, lr=cfg.lr, **({"fused": True} if fused else {"foreach": True}))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, foreach=True)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        # an explicit lr driven by graft's scheduler, not Adafactor's own relative-step schedule
        return Adafactor(groups, lr=cfg.lr, scale_parameter=False, relative_step=False, warmup_init=False)
    if name in ("adamw8bit", "paged_adamw8bit"):
        bnb_optim = _bitsandbytes_optim(name)
        cls = bnb_optim.PagedAdamW8bit if name == "paged_adamw8bit" else bnb_optim.AdamW8bit
        # tensors under 4096 elements keep 32-bit state (bitsandbytes' min_8bit_size): too small to gain
        return cls(groups, lr=cfg.lr)
    if name == "mezo":
        from graft.train.mezo import MeZO

        # forward passes only: the recipe's step hands it the window's loss as a closure
        return MeZO(groups, lr=cfg.lr, eps=cfg.mezo_eps, seed=cfg.seed)
    raise ValueError(f"unknown train.optimizer {name!r}")


def _bitsandbytes_optim(name: str):
    try:
        import bitsandbytes.optim as bnb_optim
    except ImportError:
        raise ConfigError(f"train.optimizer={name} needs bitsandbytes>={BNB_MINIMUM}; it is not installed",
                          hint=f"pip install 'bitsandbytes>={BNB_MINIMUM}', or use train.optimizer=adamw") from None
    return bnb_optim


def build_scheduler(optimizer, cfg: TrainConfig, total_steps: int):
    from transformers import get_scheduler

    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_ratio * total_steps)
    return get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
