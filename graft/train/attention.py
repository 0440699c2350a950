"""Attention over packed rows, one example at a time.

A packed row lays several examples end to end. transformers' SDPA path turns the restarting
position ids into a block-diagonal [T, T] mask and attends over the whole row, so the work grows
with the square of the row's length. Here each example is its own causal SDPA call over its own
span (the boundaries come from `cu_seq_lens_q`, the keyword flash-attention's varlen kernels use
too): the work is the sum of the examples' squares, with no mask to build or read.

Registered with transformers as "graft_packed_sdpa" (attention and mask): without
`cu_seq_lens_q` (padded batches, generation with a cache) it is exactly transformers' SDPA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NAME = "graft_packed_sdpa"


def packed_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                cu_seq_lens_q: torch.Tensor | None = None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cu_seq_lens_q is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    bounds = cu_seq_lens_q.tolist()
    # query: [1, heads, T, head_dim], key/value: [1, kv_heads, T, head_dim]; grouped-query heads are
    # shared by SDPA itself (enable_gqa), not copied, so backward keeps no repeated keys and values
    gqa = query.shape[1] != key.shape[1]
    spans = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], dropout_p=dropout,
                                            is_causal=True, scale=scaling, enable_gqa=gqa)
             for s, e in zip(bounds[:-1], bounds[1:])]
    return torch.cat(spans, dim=2).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    AttentionInterface.register(NAME, packed_sdpa)
    AttentionMaskInterface.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])


def use_packed_attention(model) -> bool:
    """Switch a model that uses SDPA to the packed variant (same results, less work); True if switched."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(base, "set_attn_implementation"):
        return False
    _register()
    try:
        base.set_attn_implementation(NAME)
    except (ValueError, ImportError):  # a model class that refuses custom attention keeps SDPA
        return False
    return True
