"""Closed-form parameter counts against known models and transformers' own meta-device models."""

from __future__ import annotations

import math

import pytest

from graft.memory.arch import arch_of

SMOLLM2_135M = {  # the bundled model's config.json (the fields that matter)
    "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
    "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
    "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False,
}
LLAMA2_7B = {
    "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False,
}


def test_smollm2_135m_by_hand():
    a = arch_of(SMOLLM2_135M)
    # per block: q 576x576 + k,v 576x192 each + o 576x576 + gate/up/down 3 x 576x1536 + two norms
    block = 576 * 576 * 2 + 576 * 192 * 2 + 3 * 576 * 1536 + 2 * 576
    assert a.layer_params == block == 3_540_096
    assert a.total_params == 49152 * 576 + 30 * block + 576 == 134_515_008  # tied: no separate head
    assert a.quantizable_params == 30 * (block - 2 * 576)


def test_llama2_7b():
    assert arch_of(LLAMA2_7B).total_params == 6_738_415_616  # Meta's published count


def _meta_count(model_cls, config) -> int:
    import torch

    with torch.device("meta"):
        return sum(p.numel() for p in model_cls(config).parameters())


def test_bert_base_matches_transformers():
    from transformers import BertConfig, BertModel

    a = arch_of(BertConfig())
    assert a.total_params == _meta_count(BertModel, BertConfig()) == 109_482_240
    assert a.encoder and not a.gated_mlp and a.dropout == 0.1


def test_gpt2_matches_transformers():
    from transformers import GPT2Config, GPT2LMHeadModel

    assert arch_of(GPT2Config()).total_params == _meta_count(GPT2LMHeadModel, GPT2Config()) == 124_439_808


@pytest.mark.parametrize("tied", [True, False])
def test_tiny_llama_matches_transformers(tied):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=97, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=128, tie_word_embeddings=tied)
    a = arch_of(config)
    assert a.total_params == _meta_count(LlamaForCausalLM, config)
    assert sum(math.prod(s) for s in a.matrices()) == a.total_params  # the shapes cover every value


def test_qwen2_biases_counted():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=100, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    assert arch_of(config).total_params == _meta_count(Qwen2ForCausalLM, config)
