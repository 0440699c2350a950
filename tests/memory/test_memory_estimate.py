"""Hand-computed estimate terms: weights by format, optimizer state, sharding, activations, logits."""

from __future__ import annotations

import pytest

from graft.config import RunConfig, apply_overrides
from graft.memory.devices import GiB, DeviceSpec
from graft.memory.estimate import estimate
from graft.memory.optimizer import state_bytes
from graft.memory.params import nf4_bytes, nf4_constant_bytes
from graft.techniques import get_technique
from graft.techniques.technique import MemoryProfile

SMOLLM2 = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
           "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
           "tie_word_embeddings": True}
TOTAL = 134_515_008
GPU = DeviceSpec("gpu", 80 * GiB, "cuda")
CPU = DeviceSpec("cpu", 16 * GiB, "cpu")


def cfg(**overrides) -> RunConfig:
    raw = {"data": {"path": "unused.json", "max_length": 256}, "train": {"batch_size": 4}}
    return RunConfig.from_dict(apply_overrides(raw, overrides))


def full(c: RunConfig, device=GPU, **kw):
    return estimate(c, SMOLLM2, {"trainable": TOTAL, "total": TOTAL}, MemoryProfile(trains_base=True), device, **kw)


def lora(c: RunConfig, device=GPU, profile=MemoryProfile(), **kw):
    return estimate(c, SMOLLM2, {"trainable": 2_442_240, "total": TOTAL + 2_442_240}, profile, device, **kw)


def test_nf4_bytes_and_constants():
    n = 64 * 256 * 10
    assert nf4_bytes(n) == n // 2
    assert nf4_constant_bytes(n, double_quant=False) == 4 * n // 64  # fp32 absmax per 64: 0.5 bit a value
    assert nf4_constant_bytes(n, double_quant=True) == n // 64 + 4 * 10  # 8-bit absmax + fp32 per 256 blocks
    bits = 8 * (nf4_bytes(n) + nf4_constant_bytes(n)) / n
    assert bits == pytest.approx(4.127, abs=1e-3)  # QLoRA paper: 4 + 0.127 bits a weight


def test_optimizer_states_by_shape():
    shapes = [(1024, 512), (512,)]
    n = 1024 * 512 + 512
    assert state_bytes("adamw", shapes) == 8 * n
    # 8-bit: the matrix in uint8 with fp32 absmax per 256; the small vector stays 32-bit
    assert state_bytes("adamw8bit", shapes) == 2 * 1024 * 512 + 8 * (1024 * 512 // 256) + 8 * 512
    assert state_bytes("adafactor", shapes) == 4 * (1024 + 512) + 4 * 512  # row + column, full for vectors
    assert state_bytes("sgd", shapes, momentum=0.9) == 4 * n
    assert state_bytes("sgd", shapes) == state_bytes("mezo", shapes) == 0
    assert state_bytes("adamw", shapes, param_bytes=2) == 4 * n  # bf16 weights: bf16 moments


def test_weights_and_adamw_for_full_fine_tuning():
    b = full(cfg(**{"technique.name": "full"})).breakdown
    assert b["trainable weights (fp32)"] == 4 * TOTAL
    assert b["optimizer state (adamw)"] == 8 * TOTAL
    assert b["gradients"] == 4 * TOTAL
    assert b["optimizer step temporaries (adamw)"] == 4 * TOTAL  # foreach sqrt over every moment


def test_qlora_stores_the_blocks_in_nf4():
    c = cfg(**{"technique.name": "qlora"})
    quantizable = 30 * (3_540_096 - 2 * 576)
    e = lora(c, profile=get_technique("qlora").memory(c.technique.options))
    b = e.breakdown
    assert b["frozen weights, 4-bit NF4"] == quantizable // 2
    assert b["NF4 quantisation constants"] == nf4_constant_bytes(quantizable, True)
    assert b["frozen weights, fp32 (not quantised)"] == 4 * (TOTAL - quantizable)
    assert e.total_bytes < lora(cfg()).total_bytes


def test_zero_stages_divide_what_they_shard():
    def terms(strategy, offload="none"):
        c = cfg(**{"technique.name": "full", "distributed.strategy": strategy, "distributed.num_gpus": 4,
                   "distributed.offload": offload})
        return full(c).breakdown

    ddp, z1, z2, z3 = terms("ddp"), terms("zero1"), terms("zero2"), terms("zero3")
    state = "optimizer state (adamw)"
    assert z1[state] == ddp[state] // 4 and z1["gradients"] == ddp["gradients"]
    assert z2[state] == ddp[state] // 4 and z2["gradients"] == ddp["gradients"] // 4
    assert z2["trainable weights (fp32)"] == ddp["trainable weights (fp32)"]
    assert z3["trainable weights (fp32)"] == ddp["trainable weights (fp32)"] // 4
    assert "DDP gradient buckets" in ddp and "DDP gradient buckets" not in z2
    off = full(cfg(**{"technique.name": "full", "distributed.strategy": "zero3", "distributed.num_gpus": 4,
                      "distributed.offload": "cpu"}))
    host = {t.name for t in off.terms if t.phase == "host"}
    assert {state, "trainable weights (fp32)"} <= host
    assert off.total_bytes < full(cfg(**{"technique.name": "full", "distributed.strategy": "zero3",
                                          "distributed.num_gpus": 4})).total_bytes


def test_checkpointing_keeps_only_block_inputs():
    plain = lora(cfg(), tokens_per_micro_batch=1024, targets_per_micro_batch=256)
    ckpt = lora(cfg(**{"train.gradient_checkpointing": True}), tokens_per_micro_batch=1024, targets_per_micro_batch=256)
    fb = lambda e: e.phase_bytes("forward-backward")
    assert ckpt.breakdown["checkpointed block inputs"] == 30 * 1024 * 576 * 4
    assert fb(ckpt) < fb(plain) / 3
    assert ckpt.total_bytes < plain.total_bytes


def test_logits_only_at_targets():
    e = lora(cfg(), tokens_per_micro_batch=1000, targets_per_micro_batch=300)
    assert e.breakdown["logits"] == 3 * 300 * 49152 * 4  # log-softmax output, its gradient in and out
    worst = lora(cfg())  # default: 4 x 256 tokens, every one a target
    assert worst.breakdown["logits"] == 3 * 1024 * 49152 * 4
    assert any("worst-case" in a for a in worst.assumptions)


def test_activations_grow_with_the_micro_batch_and_mixed_precision_halves_them():
    small = lora(cfg(), tokens_per_micro_batch=512, targets_per_micro_batch=100)
    big = lora(cfg(), tokens_per_micro_batch=1024, targets_per_micro_batch=100)
    key = "activations: MLP intermediates"
    assert big.breakdown[key] == 2 * small.breakdown[key] == 2 * 30 * 512 * 3 * 1536 * 4
    bf16 = lora(cfg(**{"train.precision": "bf16"}), tokens_per_micro_batch=1024, targets_per_micro_batch=100)
    assert bf16.breakdown[key] == big.breakdown[key] // 2
    assert "autocast weight copies" in bf16.breakdown


def test_prompt_methods_add_virtual_tokens_to_every_row():
    c = cfg(**{"technique.name": "prompt-tuning"})
    e = estimate(c, SMOLLM2, {"trainable": 20 * 576, "total": TOTAL + 20 * 576}, MemoryProfile(virtual_tokens=20),
                 GPU, 4 * 100, 50, family="prompt")
    # four padded rows of 100 tokens + 20 virtual positions each; gradients only pass through frozen blocks
    assert e.breakdown["activations: MLP intermediates"] == 30 * 4 * 120 * 3 * 1536 * 4
    assert "activations: inputs of trained/adapted linears" not in e.breakdown
    assert e.breakdown["attention mask (sdpa float bias)"] == 30 * 4 * 120 * 120 * 4


def test_mezo_needs_inference_memory_only():
    c = cfg(**{"technique.name": "full", "train.optimizer": "mezo"})
    e = full(c, tokens_per_micro_batch=1024, targets_per_micro_batch=512)
    adam = full(cfg(**{"technique.name": "full"}), tokens_per_micro_batch=1024, targets_per_micro_batch=512)
    assert "gradients" not in e.breakdown and not any(k.startswith("optimizer state") for k in e.breakdown)
    ctx = e.breakdown["runtime context (CUDA)"]
    assert e.total_bytes - ctx < (adam.total_bytes - ctx) / 4  # weights alone against weights + 3 copies + activations


def test_cpu_adds_process_context_and_heap_retention_gpu_adds_cuda_context():
    on_cpu = lora(cfg(), CPU).breakdown
    on_gpu = lora(cfg(), GPU).breakdown
    assert "runtime context (process)" in on_cpu and "freed heap kept resident (glibc)" in on_cpu
    assert "runtime context (CUDA)" in on_gpu and "allocator fragmentation (CUDA)" in on_gpu


def test_fits_against_the_device():
    e = full(cfg(**{"technique.name": "full"}))
    assert e.fits and e.total_bytes == e.phase_bytes("static") + max(e.phase_bytes("forward-backward"), e.phase_bytes("step"))
    tiny = DeviceSpec("tiny", 1 * GiB, "cuda")
    assert not full(cfg(**{"technique.name": "full"}), tiny).fits
    d = e.to_dict()
    assert d["total_bytes"] == e.total_bytes and d["terms"][0]["name"] == "runtime context (CUDA)"
    assert "total" in e.render()
