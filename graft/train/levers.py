"""Memory and speed levers around the training loop: precision, TF32, loss scaling, gradient
checkpointing, the optimizer's needs. `check_levers` refuses impossible combinations before any
work; the rest is applied by the recipe around its forward, backward and step.
"""

from __future__ import annotations

import importlib.util
from contextlib import nullcontext

import torch

from graft.config import RunConfig, TrainConfig
from graft.errors import ConfigError
from graft.train.distributed import ZERO_STAGE, check_distributed
from graft.train.optim import BNB_MINIMUM

HALF = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Techniques that feed the model a KV cache (past_key_values): transformers' checkpointed decoder
# layers drop it, so the prefix would silently vanish (measured: a shape error on the tiny Llama).
CACHE_FED = {"prefix-tuning"}


def check_levers(cfg: RunConfig, technique, device: torch.device, processes: int = 1) -> list[str]:
    """Raise ConfigError naming the option for a combination that cannot run here; return warnings
    for ones that run but do not do what they say (an ignored option). `processes`: the run's world size."""
    t, cuda = cfg.train, device.type == "cuda"
    warnings = check_distributed(cfg, technique, processes)
    d = cfg.distributed
    if d.strategy in ZERO_STAGE and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"distributed.strategy={d.strategy} needs DeepSpeed; it is not installed",
                          hint="pip install 'graft[distributed]', or use distributed.strategy=ddp or fsdp")
    if d.offload != "none" and not cuda:
        raise ConfigError(f"distributed.offload={d.offload} moves GPU state to {d.offload} memory; this run is on "
                          f"{device.type} already", hint="set distributed.offload=none")

    if t.precision != "fp32" and not cuda:
        raise ConfigError(f"train.precision={t.precision} needs a CUDA GPU; this run is on {device.type}",
                          hint="use train.precision=fp32 on CPU (bf16/fp16 matmuls are emulated there and far slower)")
    if t.precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.precision=bf16: this GPU has no bfloat16",
                          hint="use train.precision=fp16 (with loss scaling) or fp32")
    if cfg.model.dtype != "float32" and not cuda:
        raise ConfigError(f"model.dtype={cfg.model.dtype} is a GPU lever; on CPU use float32")
    trains_base = technique.memory(cfg.technique.options).trains_base
    if cfg.model.dtype == "float16" and trains_base and t.optimizer != "mezo":
        raise ConfigError(
            f"model.dtype=float16 with technique '{technique.name}' would train float16 master weights: "
            "optimizer updates underflow in fp16 and the loss scaler cannot unscale fp16 gradients",
            hint="load float32 weights (model.dtype=float32) and set train.precision=fp16 for fp16 compute")
    if cfg.model.dtype == "bfloat16" and trains_base and t.optimizer != "mezo":
        warnings.append(f"model.dtype=bfloat16 with technique '{technique.name}': weights and optimizer state are "
                        "bf16, so updates smaller than ~1/256 of a weight round away (float32 weights with "
                        "train.precision=bf16 keep them)")
    if t.tf32 and not cuda:
        warnings.append(f"train.tf32 is ignored: TF32 is a CUDA matmul mode and this run is on {device.type}")

    if t.optimizer in ("adamw8bit", "paged_adamw8bit") and not _has_bitsandbytes():
        raise ConfigError(f"train.optimizer={t.optimizer} needs bitsandbytes>={BNB_MINIMUM}; it is not installed",
                          hint=f"pip install 'bitsandbytes>={BNB_MINIMUM}', or use train.optimizer=adamw")
    if t.optimizer == "paged_adamw8bit" and not cuda:
        raise ConfigError("train.optimizer=paged_adamw8bit pages optimizer state through CUDA unified memory; "
                          f"this run is on {device.type}",
                          hint="use train.optimizer=adamw8bit: the same 8-bit state, not paged")
    if t.optimizer == "mezo" and technique.name == "adalora":
        raise ConfigError("train.optimizer=mezo cannot drive technique 'adalora': its rank allocation scores "
                          "layers by their gradients, and MeZO computes none", hint="use lora with mezo")
    # compared with the defaults, not "was it set": a saved (resumed) config spells out every value
    if t.momentum != _default("momentum") and t.optimizer != "sgd":
        warnings.append(f"train.momentum is ignored: it applies to train.optimizer=sgd, not {t.optimizer}")
    if t.mezo_eps != _default("mezo_eps") and t.optimizer != "mezo":
        warnings.append(f"train.mezo_eps is ignored: it applies to train.optimizer=mezo, not {t.optimizer}")

    if t.gradient_checkpointing:
        if t.optimizer == "mezo":
            warnings.append("train.gradient_checkpointing is ignored: MeZO runs forward passes only, "
                            "there is no backward to recompute activations for")
        elif technique.name in CACHE_FED:
            raise ConfigError(
                f"train.gradient_checkpointing cannot run with technique '{technique.name}': its prefix reaches "
                "the layers as a KV cache, which checkpointed layers drop",
                hint="set train.gradient_checkpointing=false (or use prompt-tuning / p-tuning)")
    return warnings


def check_trainable(model, cfg: RunConfig) -> None:
    """After technique.apply: refuse float16 trainable parameters (any technique, plugins included)."""
    if cfg.train.optimizer == "mezo":
        return  # no gradients, no scaler, no optimizer state
    half = [n for n, p in model.named_parameters() if p.requires_grad and p.dtype == torch.float16]
    if half:
        raise ConfigError(
            f"technique '{cfg.technique.name}' left {len(half)} trainable tensors in float16 (e.g. {half[0]}): "
            "optimizer updates underflow there and the fp16 loss scaler refuses fp16 gradients",
            hint="use model.dtype=float32 (or bfloat16) and train.precision=fp16 for fp16 compute")


def enable_gradient_checkpointing(model) -> None:
    """Recompute each decoder layer's activations in backward (non-reentrant), in place.

    Works through a peft wrapper. Non-reentrant checkpointing needs no input that requires grad, so
    a frozen base is fine; transformers still hooks the input embeddings, which is harmless.
    """
    peft_type = getattr(getattr(model, "active_peft_config", None), "peft_type", None)
    if getattr(peft_type, "value", peft_type) == "PREFIX_TUNING":
        raise ConfigError("train.gradient_checkpointing cannot run with prefix tuning: checkpointed layers drop "
                          "the KV cache its prefix travels in", hint="set train.gradient_checkpointing=false")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    enable = getattr(base, "activation_checkpointing_enable", None)  # transformers >= 5.x name
    kwargs = {"activation_checkpointing_kwargs": {"use_reentrant": False}}
    if enable is None:
        enable = getattr(base, "gradient_checkpointing_enable", None)
        kwargs = {"gradient_checkpointing_kwargs": {"use_reentrant": False}}
    if enable is None or not getattr(base, "supports_gradient_checkpointing", False):
        raise ConfigError(f"train.gradient_checkpointing: this model ({type(base).__name__}) does not support it",
                          hint="set train.gradient_checkpointing=false")
    enable(**kwargs)


def autocast(cfg: TrainConfig, device: torch.device):
    """Mixed-precision autocast for the forward pass (and the loss) on CUDA; a no-op otherwise."""
    if device.type == "cuda" and cfg.precision in HALF:
        return torch.autocast("cuda", dtype=HALF[cfg.precision])
    return nullcontext()


class NoScaler:
    """GradScaler's interface without scaling: fp32 and bf16 need no loss scaling."""

    def scale(self, loss):
        return loss

    def unscale_(self, optimizer) -> None:
        pass

    def step(self, optimizer, *args, **kwargs):
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None) -> None:
        pass

    def is_enabled(self) -> bool:
        return False

    def get_scale(self) -> float:
        return 1.0

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def grad_scaler(cfg: TrainConfig, device: torch.device):
    """torch's dynamic loss scaler for fp16 on CUDA (fp16 gradients underflow without it), else NoScaler."""
    if device.type == "cuda" and cfg.precision == "fp16":
        return torch.amp.GradScaler("cuda")
    return NoScaler()


def apply_tf32(cfg: TrainConfig) -> bool:
    """Set CUDA fp32 matmuls to TF32 (train.tf32) or full fp32; True if TF32 is now on. CPU: untouched."""
    if not torch.cuda.is_available():
        return False
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9; the allow_tf32 flag is its legacy twin
        matmul.fp32_precision = "tf32" if cfg.tf32 else "ieee"
    else:
        matmul.allow_tf32 = cfg.tf32
    return cfg.tf32


def _default(field: str):
    return TrainConfig.model_fields[field].default


def _has_bitsandbytes() -> bool:
    from graft.techniques.requirements import package

    return package("bitsandbytes", BNB_MINIMUM).check()
