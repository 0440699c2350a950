"""What the runtime adds around the tensors: the process or CUDA context, and the allocator's overhead."""

from __future__ import annotations

from graft.memory.activations import Micro
from graft.memory.arch import Arch
from graft.memory.devices import GiB
from graft.memory.result import Term

# The process besides the model and the run's tensors: Python with torch, transformers, peft and
# bitsandbytes imported (~230 MiB after `import torch, transformers` alone), the tokenizer, the data,
# and what from_pretrained leaves behind (~130 MiB). Measured as `graft train`'s RSS after a 3-step
# window, minus weights and optimizer state, with glibc's freed-heap retention switched off
# (MALLOC_MMAP_THRESHOLD_=131072): 0.50-0.51 GiB for LoRA and for full fine-tuning of SmolLM2.
CPU_CONTEXT = int(0.5 * GiB)
# The CUDA context (driver state and loaded kernels, ~300-500 MiB with lazy module loading) plus
# cuBLAS/cuDNN handles and workspaces; 1 GiB and more on older stacks without lazy loading.
CUDA_CONTEXT = int(0.75 * GiB)
# glibc serves requests up to its mmap threshold (raised to the size of the first large block freed,
# up to 32 MiB) from its heap, and keeps freed heap pages resident. From the second step on, a
# backward pass's activations come from that heap, and its resident extent ends up above the live
# peak by a share of the activation churn: the activations a non-checkpointed pass allocates and frees
# (checkpointing recomputes them, so it churns as much). Measured on SmolLM2 here (lora/full/ia3,
# adamw/adafactor, checkpointing on/off, 532-2013 tokens a micro-batch, 3-12 steps): 0.2x-0.8x of
# that, lower for full fine-tuning and IA3 (0.2x-0.45x) than for LoRA (0.5x-0.8x), growing slowly
# with the steps; 0.4 puts every measured cell within 16%. Forward-only MeZO frees each block's
# tensors at once and keeps ~nothing (measured 0.01-0.03 GiB).
CPU_HEAP_RETENTION = 0.4
GLIBC_MMAP_MAX = 32 * 1024**2
# The CUDA caching allocator rounds and splits blocks: reserved typically exceeds allocated by 5-15%
# of the transient memory. Not calibrated here (no GPU on the machine that built this).
CUDA_FRAGMENTATION = 0.10


def context_term(kind: str, data_tokens: int | None = None) -> list[Term]:
    if kind == "cuda":
        return [Term("runtime context (CUDA)", CUDA_CONTEXT, "static", "driver context, kernels, cuBLAS workspaces")]
    out = [Term("runtime context (process)", CPU_CONTEXT, "static",
                "Python + torch + transformers + peft, tokenizer, loader leftovers (measured here)")]
    if data_tokens:
        # a list slot (8 B) and an int object (28 B) for each id, a slot for each label
        out.append(Term("tokenized data", data_tokens * 44, "static", "ids and labels as Python lists, ~44 B a token"))
    return out


def cpu_heap_term(plain_pass: list[Term], micro: Micro, arch: Arch, act_bytes: int) -> Term:
    """glibc's retained heap, from the terms of a non-checkpointed backward pass (empty for MeZO)."""
    churn = sum(t.bytes for t in plain_pass if _churned(t) and _on_heap(t, micro, arch, act_bytes))
    return Term("freed heap kept resident (glibc)", int(CPU_HEAP_RETENTION * churn), "static",
                f"{CPU_HEAP_RETENTION:g} x the activations a pass allocates and frees (measured)")


def cuda_fragmentation_term(transient: int) -> Term:
    return Term("allocator fragmentation (CUDA)", int(CUDA_FRAGMENTATION * transient), "static",
                f"{CUDA_FRAGMENTATION:.0%} of the transient memory")


def _churned(t: Term) -> bool:
    return t.name.startswith(("activations:", "attention", "logits"))


def _on_heap(t: Term, micro: Micro, arch: Arch, act_bytes: int) -> bool:
    """Whether a term's tensors are small enough (<= 32 MiB each) for glibc to serve from its heap."""
    if t.name == "logits":
        return micro.targets * arch.vocab * 4 <= GLIBC_MMAP_MAX
    if t.name.startswith("attention"):
        return micro.rows * micro.width ** 2 * act_bytes <= GLIBC_MMAP_MAX
    return micro.tokens * max(arch.intermediate, arch.hidden) * act_bytes <= GLIBC_MMAP_MAX
