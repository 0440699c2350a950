"""The output layer and the cross-entropy as one step, a chunk of targets at a time.

For a vocabulary of V tokens the logits of K targets are a [K, V] tensor (SmolLM2: 49,152 columns,
192 KiB per target), and autograd would keep them, their log-softmax and their gradient alive
until backward. Here the forward pass computes each chunk's logits, its loss and at once its
gradients (softmax minus one-hot, times the weight), then frees the logits: backward only scales
the stored gradients. Same arithmetic as logits + F.cross_entropy, a fraction of the memory.

Used for decoder families whose logits are plainly `lm_head(hidden)` (no soft-capping or scaling),
with an lm_head that is a plain nn.Linear without bias or hooks; everything else takes the
ordinary path.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

PLAIN_HEAD_FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "olmo", "olmo2", "smollm3",
                       "starcoder2", "stablelm"}
CHUNK_ELEMENTS = 1 << 24  # logits held at once: 64 MiB in fp32


def _chunked(hidden, weight, targets, need_h: bool, need_w: bool):
    """(summed loss, gradient wrt hidden or None, gradient wrt weight or None), a chunk of targets at a time."""
    grad_h = torch.empty_like(hidden) if need_h else None
    grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    chunk = max(1, CHUNK_ELEMENTS // weight.shape[0])
    for s in range(0, hidden.shape[0], chunk):
        h, t = hidden[s : s + chunk], targets[s : s + chunk]
        logits = F.linear(h, weight).float()
        lse = torch.logsumexp(logits, dim=-1)
        total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
        if need_h or need_w:
            probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            probs[torch.arange(len(t), device=t.device), t] -= 1.0
            if need_h:
                grad_h[s : s + chunk] = probs.to(h.dtype) @ weight
            if need_w:
                grad_w += probs.t() @ h.float()
    return total, grad_h, grad_w


class _HeadCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ctx.weight_dtype = weight.dtype
        total, grad_h, grad_w = _chunked(hidden, weight, targets, *ctx.needs_input_grad[:2])
        ctx.save_for_backward(grad_h, grad_w)
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        return (grad_h * grad_out.to(grad_h.dtype) if grad_h is not None else None,
                (grad_w * grad_out).to(ctx.weight_dtype) if grad_w is not None else None, None)


def head_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of `hidden @ weight.T` against `targets`, without keeping the logits.

    Under no_grad (evaluation, MeZO) no gradient is formed, even for a weight that trains."""
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _HeadCrossEntropy.apply(hidden, weight, targets)
    return _chunked(hidden, weight, targets, False, False)[0]


def plain_head(model) -> tuple[torch.nn.Module, torch.nn.Linear] | None:
    """(decoder, lm_head) when the model's logits are plainly lm_head(decoder(...)); else None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_FAMILIES:
        return None
    if any(getattr(config, k, None) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling")):
        return None
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if type(head) is not torch.nn.Linear or head.bias is not None or head._forward_hooks or head._forward_pre_hooks:
        return None
    if base._forward_hooks or base._forward_pre_hooks:
        return None
    # sharded (FSDP2) weights are whole only inside the model's own forward; DTensor is looked up, not
    # imported: importing torch.distributed.tensor costs ~0.5 s, and whoever sharded the model has done it
    dtensor = sys.modules.get("torch.distributed.tensor")
    if dtensor is not None and isinstance(head.weight, dtensor.DTensor):
        return None
    return base.get_decoder(), head
