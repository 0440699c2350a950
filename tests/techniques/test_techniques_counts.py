"""Honest counts: LoRA's trainable parameters equal the closed form r*(d_in+d_out) per targeted
linear layer, on a decoder, an encoder classifier and an encoder-decoder, for several ranks; the
meta-device count equals the count on real weights and what a run's summary reports."""

from __future__ import annotations

import pytest
import torch

from graft.techniques import ApplyContext, count_parameters, get_technique
from graft.techniques.counting import count_trainable


def _tiny(kind: str):
    from transformers import (BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForCausalLM,
                              T5Config, T5ForConditionalGeneration)

    torch.manual_seed(0)
    if kind == "causal-lm":
        return LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2)), "lm_head"
    if kind == "classification":
        return BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                                                        num_attention_heads=4, num_labels=3)), "classifier"
    return T5ForConditionalGeneration(T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                                               num_decoder_layers=2, num_heads=4)), "lm_head"


def _closed_form(model, r: int, head: str) -> int:
    return sum(r * (m.in_features + m.out_features) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and not name.startswith(head))


@pytest.mark.parametrize("kind", ["causal-lm", "classification", "seq2seq"])
@pytest.mark.parametrize("r", [1, 4, 16])
def test_lora_count_is_the_closed_form(kind, r):
    model, head = _tiny(kind)
    expected = _closed_form(model, r, head)
    base_total = sum(p.numel() for p in model.parameters())
    lora = get_technique("lora")
    heads = ("classifier",) if kind == "classification" else ()
    wrapped = lora.apply(model, lora.parse({"r": r}), ApplyContext(kind=kind, head=heads))
    trainable, total = count_parameters(wrapped)
    # peft's own numbers, the ones print_trainable_parameters prints
    assert (trainable, total) == wrapped.get_nb_trainable_parameters()
    if kind == "classification":
        classifier = 32 * 3 + 3  # trained alongside: a copy of the head (modules_to_save)
        assert trainable == expected + classifier
        assert total == base_total + expected + classifier
    else:
        assert trainable == expected
        assert total == base_total + expected


def test_meta_count_equals_real_count_and_run_summary(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    from graft.train.recipe import train

    meta = count_trainable(tiny_model_dir, "lora", {"r": 8, "alpha": 16})
    result = train(make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs", **{"train.max_steps": 1}))
    s = result.summary
    assert (meta["trainable"], meta["total"]) == (s["trainable_params"], s["total_params"])
    assert s["trainable_percent"] == round(100 * meta["trainable"] / meta["total"], 4)
