"""The activation model against what autograd really saves.

Saved-tensor hooks see every tensor kept for backward; one block's share is the difference between
the same model with three blocks and with two. The model's per-block count must match it, up to the
small tensors it leaves out (norm scales, attention log-sum-exp, LoRA's rank-wide tensors).
"""

from __future__ import annotations

import pytest
import torch

from graft.memory.activations import Micro, attention_extra_bytes, block_values, kv_repeated
from graft.memory.arch import arch_of

ROWS, LENGTH = 4, 16  # one packed row of four examples
T = ROWS * LENGTH


def _config(layers: int):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=101, hidden_size=128, intermediate_size=384, num_hidden_layers=layers,
                       num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                       attn_implementation="sdpa")


def _saved_bytes(layers: int, mode: str) -> int:
    from transformers import LlamaForCausalLM

    from graft.techniques import ApplyContext, get_technique

    torch.manual_seed(0)
    model = LlamaForCausalLM(_config(layers))
    if mode == "adapters":
        lora = get_technique("lora")
        model = lora.apply(model, lora.parse({"r": 1}), ApplyContext())
    elif mode == "frozen":
        model.requires_grad_(False)
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    ids = torch.randint(5, 100, (1, T), generator=torch.Generator().manual_seed(0))
    pos = torch.arange(LENGTH).repeat(ROWS)[None]
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(mode == "frozen")  # prompt-like input
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(inputs_embeds=embeds, position_ids=pos, use_cache=False, logits_to_keep=torch.arange(T))
    return sum(seen.values())


@pytest.mark.parametrize("mode", ["frozen", "adapters", "full"])
def test_one_block_saves_what_the_model_says(mode):
    measured = _saved_bytes(3, mode) - _saved_bytes(2, mode)
    arch = arch_of(_config(3))
    micro = Micro(1, T, T)
    predicted = sum(block_values(arch, mode, kv_repeated("sdpa", True)).values()) * T * 4
    predicted += attention_extra_bytes(arch, micro, "sdpa", 4, True)[1]
    # left out: two norm scales, 4 log-sum-exp values and (LoRA r=1) 7 rank-wide values a token
    small = (2 + arch.heads + (7 if mode == "adapters" else 0)) * T * 4
    assert predicted <= measured <= predicted + small, (mode, measured, predicted)


def test_frozen_base_still_keeps_most_activations():
    """With a frozen base, gradients must still flow through every block to reach earlier adapters:
    a frozen-base LoRA block keeps ~90% of what full fine-tuning keeps."""
    arch = arch_of(_config(3))
    full = sum(block_values(arch, "full").values())
    lora = sum(block_values(arch, "adapters").values())
    frozen = sum(block_values(arch, "frozen").values())
    assert frozen < lora < full
    assert lora / full > 0.8


def test_eager_attention_keeps_the_square():
    arch = arch_of(_config(2))
    narrow, wide = Micro(1, 512, 512), Micro(1, 1024, 1024)
    e1, e2 = attention_extra_bytes(arch, narrow, "eager", 4, True)[1], attention_extra_bytes(arch, wide, "eager", 4, True)[1]
    assert e2 == 4 * e1 == 4 * arch.heads * 512 * 512 * 4
    assert attention_extra_bytes(arch, wide, "flash_attention_2", 2, True)[1] == 0
