"""Bytes of stored weights by format.

NF4 (Dettmers et al. 2023, "QLoRA"): 4 bits a value plus one fp32 absmax per 64-value block
(0.5 bit a value); double quantisation stores those absmax values in 8 bits with one fp32 constant
per 256 blocks: 8/64 + 32/(64*256) = 0.127 bit a value. LLM.int8: 1 byte a value plus one fp32
scale per output row.
"""

from __future__ import annotations

import math

DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "int8": 1}
NF4_BLOCK = 64
DOUBLE_QUANT_GROUP = 256


def dtype_bytes(dtype: str) -> int:
    return DTYPE_BYTES[dtype]


def nf4_bytes(n: int) -> int:
    """The packed 4-bit values alone."""
    return math.ceil(n / 2)


def nf4_constant_bytes(n: int, double_quant: bool = True) -> int:
    """Quantisation constants of n NF4 values."""
    blocks = math.ceil(n / NF4_BLOCK)
    if not double_quant:
        return 4 * blocks
    return blocks + 4 * math.ceil(blocks / DOUBLE_QUANT_GROUP)


def int8_bytes(n: int, rows: int) -> int:
    return n + 4 * rows


def weight_terms(arch, lv, trainable: int, total: int, quantizable: int | None, profile, double_quant: bool = True):
    """(on-device terms, offloaded terms) of the stored weights, sharded and offloaded as the levers say.

    peft keeps adapter weights in fp32 on a half-precision base; prepare_model_for_kbit_training
    upcasts what 4-bit loading leaves unquantised (embeddings, norms, the LM head) to fp32.
    """
    from graft.memory.result import Term

    base_b = dtype_bytes(lv.model_dtype)
    train_b = trainable_bytes(lv, profile)
    frozen = 0 if profile.trains_base else total - trainable
    terms: list[Term] = []
    if profile.base_bits == 4:
        q = min(quantizable if quantizable is not None else arch.quantizable_params, frozen)
        terms.append(Term("frozen weights, 4-bit NF4", nf4_bytes(q), "static", f"{q:,} values x 0.5 B"))
        terms.append(Term("NF4 quantisation constants", nf4_constant_bytes(q, double_quant), "static",
                          "absmax per 64 values: " + ("8-bit + fp32 per 256 blocks (double quant)" if double_quant else "fp32")))
        terms.append(Term("frozen weights, fp32 (not quantised)", (frozen - q) * 4, "static", "embeddings, norms, LM head"))
    elif profile.base_bits == 8:
        terms.append(Term("frozen weights, int8", int8_bytes(frozen, frozen // max(arch.hidden, 1)), "static",
                          "1 B + an fp32 scale a row"))
    elif frozen:
        terms.append(Term(f"frozen weights ({lv.model_dtype})", frozen * base_b, "static", f"{frozen:,} x {base_b} B"))
    terms.append(Term(f"trainable weights ({'fp32' if train_b == 4 else lv.model_dtype})", trainable * train_b, "static",
                      f"{trainable:,} x {train_b} B"))
    if has_master_weights(lv, profile):
        terms.append(Term("fp32 master weights", trainable * 4, "static", "DeepSpeed's fp32 copy of half weights, updated by the optimizer"))

    shard_states, _, shard_params = lv.shards()
    device, host = [], []
    for t in terms:
        if t.name == "fp32 master weights":
            share = Term(t.name, t.bytes // shard_states, "static", t.note + _per(shard_states))
            (host if lv.offloading else device).append(share)
        elif lv.offloading and lv.strategy in ("zero3", "fsdp"):  # ZeRO-3 offload_param
            host.append(Term(t.name, t.bytes // shard_params, "host", f"offloaded ({lv.offload})"))
        else:
            device.append(Term(t.name, t.bytes // shard_params, "static", t.note + _per(shard_params)))
    host = [Term(t.name, t.bytes, "host", t.note) for t in host]
    if shard_params > 1:
        device.append(Term("gathered block weights (zero3/fsdp)", 2 * arch.layer_params * base_b, "static",
                           "the running block and the prefetched next one, whole"))
    return device, host


def trainable_bytes(lv, profile) -> int:
    return dtype_bytes(lv.model_dtype) if profile.trains_base else 4


def has_master_weights(lv, profile) -> bool:
    """DeepSpeed's bf16/fp16 engines keep fp32 master weights (and fp32 optimizer state) for half
    weights. graft's own loop does not: with fp32 weights autocast needs none, and with bf16 weights
    it updates them, and keeps the optimizer state, in bf16."""
    return profile.trains_base and lv.half_weights and lv.strategy in ("zero1", "zero2", "zero3")


def _per(n: int) -> str:
    return f", / {n} GPUs" if n > 1 else ""
