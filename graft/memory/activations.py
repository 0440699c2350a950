"""What the forward pass keeps for backward, per block and per token, from the architecture alone.

Counted tensor by tensor from what autograd saves in a transformers block (verified with
saved-tensor hooks on SmolLM2, fp32, sdpa: LoRA 10,824 and full fine-tuning 11,915 saved values per
token per block besides the mask; this model predicts 10,752 and 11,904). A tensor is saved only
when some gradient needs it, so what a block keeps depends on what trains:

* gradients pass through every block (any technique that trains something inside or below it):
  the block input and mid-block residual (2d, kept by the norms), attention q, k, v and its output
  (k and v repeated to all heads when a mask is passed, as packed and padded rows need), and the
  MLP's gate input, activation output and up output (3I for a gated MLP, I for a plain one);
* a linear layer whose weight trains or carries an adapter (LoRA reads the same input) also keeps
  its input: the q/k/v input d, the MLP input d, the down-projection input I (o_proj's input is the
  attention output already kept);
* full fine-tuning also keeps RMSNorm's normalised input for the norm weights' gradient (2d).

Not counted: LoRA's rank-wide tensors (7r a token a block, ~0.5% here), rotary tables (shared).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from graft.memory.arch import Arch

Mode = Literal["frozen", "adapters", "full"]  # what trains inside the blocks


@dataclass(frozen=True)
class Micro:
    """One micro-batch as the model computes it."""

    rows: int  # sequences side by side (1 for a packed row)
    width: int  # positions per row, virtual tokens included
    targets: int  # positions that get logits (graft: targets only; a plain HF Trainer: every position)

    @property
    def tokens(self) -> int:
        return self.rows * self.width


def block_values(arch: Arch, mode: Mode, repeated_kv: bool = True) -> dict[str, int]:
    """Values saved per token per block, by part (elements, not bytes)."""
    d, q, i = arch.hidden, arch.heads * arch.head_dim, arch.intermediate
    kv = q if repeated_kv else arch.kv_heads * arch.head_dim
    parts = {
        "residual stream": 2 * d,
        "attention q, k, v, output": 2 * q + 2 * kv,
        "MLP intermediates": (3 if arch.gated_mlp else 1) * i,
    }
    if mode in ("adapters", "full"):
        parts["inputs of trained/adapted linears"] = 2 * d + i
    if mode == "full" and not (arch.encoder or arch.model_type in ("gpt2",)):
        parts["RMSNorm normalised inputs"] = 2 * d  # LayerNorm keeps only mean/rstd besides its input
    if arch.dropout > 0:
        parts["dropout outputs"] = 2 * d  # attention and MLP outputs (their 1-byte masks: dropout_mask_bytes)
    return parts


def kv_repeated(attn: str, masked: bool) -> bool:
    """transformers repeats k and v to every head (a copy) unless the kernel takes grouped heads itself:
    flash-attention always, sdpa only without a mask (enable_gqa)."""
    return attn == "eager" or (attn == "sdpa" and masked)


def attention_extra_bytes(arch: Arch, micro: Micro, attn: str, act_bytes: int, masked: bool) -> tuple[str, int]:
    """Per block: what the attention kernel keeps that grows with the square of the row width."""
    if attn == "eager":
        # the softmax output, rows x heads x S x S, kept for its own backward and for the product with V
        return "attention probabilities (eager)", micro.rows * arch.heads * micro.width ** 2 * act_bytes
    if attn.startswith("flash") or not masked:
        return "attention mask", 0  # flash-attention reads sequence bounds from position ids; no mask tensor
    # sdpa given a boolean mask (packed rows restart positions; padded rows hide padding) turns it into
    # a float bias in the activation dtype and keeps it for backward: rows x S x S per block (measured)
    return "attention mask (sdpa float bias)", micro.rows * micro.width ** 2 * act_bytes
