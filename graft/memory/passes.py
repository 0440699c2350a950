"""What one micro-batch's pass holds at its peak: activations, logits, backward working memory.

With backprop the peak is where backward starts: every block's saved activations are alive and the
loss gradient is formed over the logits (three K x V fp32 tensors: the log-softmax output kept for
backward, the gradient coming in and the one going out; measured on SmolLM2: saved activations +
3 x K x V x 4 B matched the peak within 0.3%). MeZO runs forward passes under no_grad: only the
running block's tensors live.
"""

from __future__ import annotations

from graft.memory.activations import Micro, Mode, attention_extra_bytes, block_values, kv_repeated
from graft.memory.arch import Arch
from graft.memory.levers import Levers
from graft.memory.result import Term

FP32_UNDER_AUTOCAST = {"residual stream", "RMSNorm normalised inputs"}


def backward_terms(arch: Arch, micro: Micro, lv: Levers, masked: bool, mode: Mode, factor: float = 1.0,
                   classes: int | None = None) -> list[Term]:
    """Terms of a forward + backward pass. factor: the technique's activation_factor (adapters only).
    classes: a classifier's label count (its logits are rows x classes, not targets x vocab)."""
    act_b = lv.act_bytes
    parts = block_values(arch, mode, kv_repeated(lv.attn, masked))
    sizes = {name: (lv.wide_bytes if name in FP32_UNDER_AUTOCAST else act_b) for name in parts}
    scale = factor if mode == "adapters" else 1.0
    per_block = int(scale * sum(v * sizes[name] for name, v in parts.items()) * micro.tokens)
    extra_name, extra = attention_extra_bytes(arch, micro, lv.attn, act_b, masked)
    if arch.dropout > 0:
        extra += 2 * arch.hidden * micro.tokens  # the 1-byte masks of the two dropouts a block
    out: list[Term] = []
    if lv.checkpointing:
        out.append(Term("checkpointed block inputs", arch.layers * arch.hidden * micro.tokens * lv.wide_bytes,
                        "forward-backward", f"{arch.layers} blocks x {micro.tokens:,} tokens x {arch.hidden}"))
        out.append(Term("one block recomputed", per_block + extra, "forward-backward",
                        "its activations rebuilt in backward, then freed"))
    else:
        for name, values in parts.items():
            out.append(Term(f"activations: {name}", int(scale * values * micro.tokens * sizes[name]) * arch.layers,
                            "forward-backward",
                            f"{arch.layers} blocks x {micro.tokens:,} tokens x {values:,} values x {sizes[name]} B"
                            + (f" x {factor:g} (technique)" if scale != 1 else "")))
        if extra:
            out.append(Term(extra_name, extra * arch.layers, "forward-backward",
                            f"{arch.layers} blocks x {micro.rows} x {micro.width:,}^2"))
    out.append(_logits(arch, micro, lv, classes))
    # once the logits are freed, each block's backward briefly holds gradients as large as its
    # activations (twice, recomputed, under checkpointing)
    work = (2 if lv.checkpointing else 1) * per_block
    out.append(Term("backward working set beyond the logits", max(0, work - out[-1].bytes), "forward-backward",
                    "one block's activation gradients, when larger than the logits"))
    return out


def forward_only_terms(arch: Arch, micro: Micro, lv: Levers, masked: bool, classes: int | None = None) -> list[Term]:
    """Terms of a no_grad forward: the widest moment of one block (the MLP's gate, up, activation and
    product beside the residual stream) and the attention mask, then the logits and their log-softmax."""
    values = (4 if arch.gated_mlp else 2) * arch.intermediate + 4 * arch.hidden
    _, mask = attention_extra_bytes(arch, micro, lv.attn, lv.act_bytes, masked)
    width = classes or arch.vocab
    rows = micro.rows if classes else micro.targets
    return [
        Term("one block's forward tensors", values * micro.tokens * lv.act_bytes + mask, "forward-backward",
             f"{micro.tokens:,} tokens x {values:,} values, one block at a time"),
        Term("logits", 2 * rows * width * 4, "forward-backward",
             f"{rows:,} x {width:,} x fp32 x 2 (logits, log-softmax)"),
    ]


def _logits(arch: Arch, micro: Micro, lv: Levers, classes: int | None) -> Term:
    if classes:
        return Term("logits", 3 * micro.rows * classes * 4, "forward-backward", f"{micro.rows} rows x {classes} classes")
    per = 12 + (2 if lv.autocast else 0)
    return Term("logits", micro.targets * arch.vocab * per, "forward-backward",
                f"{micro.targets:,} targets x {arch.vocab:,} x fp32 x 3 (log-softmax output, its gradient in and out)"
                + (" + the half-precision logits" if lv.autocast else ""))
