"""The settings that change memory, read once from a RunConfig for a device."""

from __future__ import annotations

from dataclasses import dataclass

from graft.memory.devices import DeviceSpec


@dataclass(frozen=True)
class Levers:
    batch_size: int
    max_length: int
    grad_accum: int
    optimizer: str
    momentum: float
    weight_decay: float
    precision: str  # fp32 | bf16 | fp16 (autocast); always fp32 on CPU
    model_dtype: str  # float32 | bfloat16 | float16: how the weights are stored
    checkpointing: bool
    strategy: str
    offload: str
    num_gpus: int
    attn: str  # sdpa | eager | flash_attention_2

    @classmethod
    def of(cls, cfg, device: DeviceSpec) -> "Levers":
        t, dist = cfg.train, cfg.distributed
        own = getattr(cfg.technique.options, "gradient_checkpointing", False)  # QLoRA's ("auto": on with CUDA)
        ckpt = bool(t.gradient_checkpointing) or own is True or (own == "auto" and device.kind == "cuda")
        return cls(t.batch_size, cfg.data.max_length, t.grad_accum, t.optimizer, t.momentum, t.weight_decay,
                   t.precision if device.kind == "cuda" else "fp32", cfg.model.dtype, ckpt and t.optimizer != "mezo",
                   dist.strategy, dist.offload, dist.num_gpus if dist.strategy != "none" else 1,
                   getattr(cfg.model, "attn_implementation", None) or "sdpa")

    @property
    def autocast(self) -> bool:
        return self.precision in ("bf16", "fp16")

    @property
    def half_weights(self) -> bool:
        return self.model_dtype in ("bfloat16", "float16")

    @property
    def act_bytes(self) -> int:
        """Bytes of most activations: half under autocast or with half weights, else fp32."""
        return 2 if (self.autocast or self.half_weights) else 4

    @property
    def wide_bytes(self) -> int:
        """Bytes of the residual stream and norms: autocast keeps them in fp32 when the weights are fp32."""
        return 4 if not self.half_weights else 2

    def shards(self) -> tuple[int, int, int]:
        """(optimizer state, gradients, weights) divisors: ZeRO-1 shards the state, ZeRO-2 also the
        gradients, ZeRO-3/FSDP also the weights (Rajbhandari et al. 2020)."""
        n = self.num_gpus
        return (n if self.strategy in ("zero1", "zero2", "zero3", "fsdp") else 1,
                n if self.strategy in ("zero2", "zero3", "fsdp") else 1,
                n if self.strategy in ("zero3", "fsdp") else 1)

    @property
    def offloading(self) -> bool:
        return self.offload != "none" and self.strategy != "none"
