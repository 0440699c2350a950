"""Optimizer state and the step's temporary memory, from the trainable tensors' shapes.

Per trainable value (state_bytes):
* AdamW: exp_avg + exp_avg_sq, each in the parameter's dtype (8 B in fp32; Loshchilov & Hutter 2019).
* 8-bit AdamW (bitsandbytes): both moments as uint8 with one fp32 absmax per 256-value block
  (Dettmers et al. 2022, "8-bit Optimizers via Block-wise Quantization"): 2 + 8/256 B; tensors under
  4,096 values keep 32-bit state (bitsandbytes' min_8bit_size). Paged: the same bytes, in memory the
  driver can page to the host under pressure.
* Adafactor (Shazeer & Stern 2018): a matrix m x n keeps a row and a column second-moment average,
  (m + n) x 4 B; vectors keep the full average. No first moment (beta1 None, the default).
* SGD: a momentum buffer (param dtype) when momentum > 0, else nothing. MeZO: nothing.
"""

from __future__ import annotations

import math
from typing import Sequence

Shape = Sequence[int]
BNB_BLOCK = 256
BNB_MIN_8BIT = 4096


def state_bytes(optimizer: str, shapes: list[Shape], param_bytes: int = 4, momentum: float = 0.0) -> int:
    """Bytes of optimizer state for trainable tensors of these shapes."""
    total = 0
    for shape in shapes:
        n = math.prod(shape)
        if optimizer == "adamw":
            total += 2 * n * param_bytes
        elif optimizer in ("adamw8bit", "paged_adamw8bit"):
            total += 2 * n + 2 * 4 * math.ceil(n / BNB_BLOCK) if n >= BNB_MIN_8BIT else 8 * n
        elif optimizer == "adafactor":
            total += 4 * (shape[-2] * math.prod(shape[:-2]) + shape[-1]) if len(shape) >= 2 else 4 * n
        elif optimizer == "sgd":
            total += n * param_bytes if momentum > 0 else 0
        elif optimizer == "mezo":
            pass
        else:
            raise ValueError(f"unknown optimizer {optimizer!r}")
    return total


def step_temp_bytes(optimizer: str, shapes: list[Shape], param_bytes: int = 4, weight_decay: float = 0.0) -> tuple[int, str]:
    """Short-lived memory of one optimizer step, and why.

    torch's AdamW (foreach) takes the square root of every exp_avg_sq at once: one copy of the
    trainable values. Adafactor and MeZO work tensor by tensor: a couple of copies of the largest.
    """
    if not shapes:
        return 0, ""
    n_all = sum(math.prod(s) for s in shapes)
    largest = max(math.prod(s) for s in shapes)
    if optimizer == "adamw":
        return n_all * param_bytes, "foreach sqrt(exp_avg_sq): one copy of the trainable values"
    if optimizer in ("adamw8bit", "paged_adamw8bit"):
        return largest * 4, "dequantised moments of one tensor at a time"
    if optimizer == "adafactor":
        return 2 * largest * 4, "grad^2 and the rebuilt row x column estimate of the largest tensor"
    if optimizer == "sgd":
        return (n_all * param_bytes if weight_decay > 0 else 0), "grad + weight decay copy" if weight_decay > 0 else ""
    if optimizer == "mezo":
        return largest * param_bytes, "the random direction z of one tensor, regenerated from its seed"
    raise ValueError(f"unknown optimizer {optimizer!r}")


NOTES = {
    "adamw": "exp_avg + exp_avg_sq",
    "adamw8bit": "two uint8 moments + fp32 absmax per 256",
    "paged_adamw8bit": "two uint8 moments + fp32 absmax per 256, pageable",
    "adafactor": "row + column averages per matrix",
}


def optimizer_terms(lv, shapes: list[Shape], param_bytes: int, trainable: int, grad_bytes: int):
    """(static, forward-backward, step, host) terms of the optimizer and the gradients."""
    from graft.memory.result import Term

    shard_states, shard_grads, _ = lv.shards()
    if lv.optimizer == "mezo":
        z, why = step_temp_bytes("mezo", shapes, grad_bytes)
        return [], [], [Term("random direction z", z, "step", why)], []
    static, fb, step, host = [], [], [], []
    states = state_bytes(lv.optimizer, shapes, param_bytes, lv.momentum) // shard_states
    note = NOTES.get(lv.optimizer, "momentum buffer" if lv.momentum > 0 else "none (no momentum)")
    name = f"optimizer state ({lv.optimizer})"
    if lv.offloading:
        host.append(Term(name, states, "host", f"offloaded ({lv.offload})"))
    else:
        static.append(Term(name, states, "static", note + (f", / {shard_states} GPUs" if shard_states > 1 else "")))
    grads = trainable * grad_bytes // shard_grads
    grad_note = f"{trainable:,} x {grad_bytes} B" + (f", / {shard_grads} GPUs" if shard_grads > 1 else "")
    if lv.grad_accum > 1:
        fb.append(Term("gradients (accumulating)", grads, "forward-backward", grad_note + "; kept across micro-batches"))
    temp, why = step_temp_bytes(lv.optimizer, shapes, param_bytes, lv.weight_decay)
    step.append(Term("gradients", grads, "step", grad_note))
    step.append(Term(f"optimizer step temporaries ({lv.optimizer})", 0 if lv.offloading else temp // shard_states, "step", why))
    if lv.strategy == "ddp":
        static.append(Term("DDP gradient buckets", grads, "static", "a flat copy of the gradients for all-reduce"))
    return static, fb, step, host
