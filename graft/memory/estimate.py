"""Peak memory of a training run, term by term, before anything is loaded.

    total = static terms (context, weights, optimizer state, allocator overhead)
          + max(the forward-backward peak, the optimizer step)

The two transient phases never coexist: backward has freed the activations before the step runs.
Each term is named with how it was counted (see Estimate.render / to_dict).
"""

from __future__ import annotations

import math
from dataclasses import replace

from graft.memory.activations import Micro
from graft.memory.arch import Arch, arch_of
from graft.memory.devices import DeviceSpec
from graft.memory.levers import Levers
from graft.memory.optimizer import optimizer_terms
from graft.memory.params import has_master_weights, trainable_bytes, weight_terms
from graft.memory.passes import backward_terms, forward_only_terms
from graft.memory.result import Estimate, Term
from graft.memory.runtime import context_term, cpu_heap_term, cuda_fragmentation_term


def estimate(cfg, model_config, counts: dict, profile, device: DeviceSpec, tokens_per_micro_batch: int | None = None,
             targets_per_micro_batch: int | None = None, *, family: str | None = None, packed: bool | None = None,
             trainable_shapes: list | None = None, data_tokens: int | None = None, task: str = "causal-lm",
             num_labels: int = 2) -> Estimate:
    """The estimate for `cfg` on `device`.

    counts: {"trainable", "total"} as graft.techniques.counting gives them, optionally "quantizable"
    (values in the blocks' linear weights, what 4-bit loading quantises). profile: the technique's
    MemoryProfile. family: the technique's family ("prompt": gradients only pass through frozen
    blocks). packed: padding-free packed rows (default: yes unless a prompt method). trainable_shapes:
    the trainable tensors' shapes (Adafactor's state depends on them). data_tokens: tokens of the
    tokenized data (CPU: held as Python lists). tokens/targets per micro-batch: the largest micro-batch's
    positions (padded rows: rows x width) and loss targets; default the worst case, batch_size x
    max_length positions, every one a target.
    """
    arch = arch_of(model_config)
    lv = Levers.of(cfg, device)
    trainable, total = int(counts["trainable"]), int(counts["total"])
    assumptions: list[str] = []

    weights, host = weight_terms(arch, lv, trainable, total, counts.get("quantizable"), profile,
                                 bool(getattr(cfg.technique.options, "double_quant", True)))
    shapes = trainable_shapes or _default_shapes(arch, trainable, profile.trains_base)
    state_b = 4 if has_master_weights(lv, profile) else trainable_bytes(lv, profile)
    opt_static, opt_fb, step, opt_host = optimizer_terms(lv, shapes, state_b, trainable, trainable_bytes(lv, profile))

    micro, masked = _micro(lv, profile, family, packed, tokens_per_micro_batch, targets_per_micro_batch, task, assumptions)
    classes = num_labels if task == "classification" else None
    mode = "full" if profile.trains_base else "frozen" if family == "prompt" else "adapters"
    if lv.optimizer == "mezo":
        fb = forward_only_terms(arch, micro, lv, masked, classes)
        assumptions.append("MeZO: two forward passes a step, no backward, no gradients, no optimizer state")
    else:
        fb = backward_terms(arch, micro, lv, masked, mode, profile.activation_factor, classes) + opt_fb
        if lv.grad_accum == 1 and profile.trains_base and arch.tied and not classes:
            # backward's first matmul writes the tied embedding / LM head gradient while all is alive
            fb.append(Term("gradient of the LM head", arch.vocab * arch.hidden * trainable_bytes(lv, profile)
                           // lv.shards()[1], "forward-backward", "tied embedding, formed at the start of backward"))
        if lv.autocast and not lv.half_weights:
            # autocast caches a weight's half copy only for leaves that require grad (the trained
            # weights); frozen weights are cast again at each use and freed at once
            fb.append(Term("autocast weight copies", trainable * 2, "forward-backward",
                           "half-precision casts of the trained fp32 weights, cached for the forward"))

    terms = context_term(device.kind, data_tokens) + weights + opt_static + fb + step
    if device.kind == "cpu":
        plain = [] if lv.optimizer == "mezo" else backward_terms(
            arch, micro, replace(lv, checkpointing=False), masked, mode, profile.activation_factor, classes)
        terms.append(cpu_heap_term(plain, micro, arch, lv.act_bytes))
    else:
        terms.append(cuda_fragmentation_term(max(sum(t.bytes for t in fb), sum(t.bytes for t in step))))
    terms += host + opt_host
    if lv.strategy != "none":
        assumptions.append(f"per GPU: {lv.strategy} over {lv.num_gpus} GPU(s)" + (f", offload {lv.offload}" if lv.offloading else ""))
    return Estimate(terms, device, assumptions)


def _micro(lv: Levers, profile, family, packed, tokens, targets, task, assumptions) -> tuple[Micro, bool]:
    """The micro-batch as the model computes it, and whether attention gets a mask."""
    if packed is None:
        packed = family != "prompt" and task == "causal-lm"
    if not tokens:
        assumptions.append(f"worst-case micro-batch: {lv.batch_size} x {lv.max_length} tokens, every position a "
                           "target (pass the real micro-batch sizes, or --from-data, for a closer figure)")
        tokens = lv.batch_size * lv.max_length
    rows = 1 if packed else lv.batch_size
    width = math.ceil(tokens / rows) + profile.virtual_tokens
    micro = Micro(rows, width, min(targets or tokens, rows * width))
    if task == "causal-lm" and micro.targets < micro.tokens:
        assumptions.append(f"logits at the {micro.targets:,} target positions only (a plain HF Trainer computes "
                           f"all {micro.tokens:,})")
    # packed rows of several examples restart positions (a block-diagonal mask); padded rows mask padding
    return micro, rows > 1 or lv.batch_size > 1


def _default_shapes(arch: Arch, trainable: int, trains_base: bool) -> list[tuple[int, ...]]:
    if trains_base:
        return arch.matrices()
    d = arch.hidden  # adapters without their shapes: rank-wide matrices beside d-wide layers
    return [(max(1, trainable // d), d)] if trainable >= d else [(trainable,)]
