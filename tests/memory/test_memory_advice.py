"""Advice: when a run does not fit, re-estimated lever combinations that do."""

from __future__ import annotations

import json

import pytest

from graft.config import RunConfig
from graft.memory import device_for, estimate_run
from graft.techniques import get_technique

LLAMA2_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False,
             "max_position_embeddings": 4096}


@pytest.fixture(scope="module")
def llama7b(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama7b")  # config.json only: the estimate loads no weights
    (folder / "config.json").write_text(json.dumps(LLAMA2_7B))
    return folder


def _run(folder, technique="full", **train):
    cfg = RunConfig.from_dict({"data": {"path": "unused.json", "max_length": 512}, "technique": {"name": technique},
                               "train": {"batch_size": 4, **train}})
    return cfg, estimate_run(cfg, folder, get_technique(technique), cfg.technique.options, "causal-lm",
                             device_for("rtx4090"))


def test_full_fine_tuning_of_7b_on_a_4090_gets_advice_that_fits(llama7b):
    cfg, e = _run(llama7b)
    assert not e.fits and e.total_bytes > 100 * 2**30  # ~16-20 B a parameter before activations
    assert e.advice, "no advice"
    labels = " | ".join(a.label for a in e.advice)
    assert "qlora" in labels or "lora" in labels or "ZeRO" in labels
    assert [a.cost for a in e.advice] == sorted(a.cost for a in e.advice)
    for a in e.advice:  # every piece of advice, applied, really fits
        from graft.config import apply_overrides

        raw = apply_overrides(cfg.model_dump(mode="json"), a.changes)
        if "technique.name" in a.changes:
            raw["technique"] = {"name": a.changes["technique.name"]}
        fixed = RunConfig.from_dict(raw)
        again = estimate_run(fixed, llama7b, get_technique(fixed.technique.name), fixed.technique.options,
                             "causal-lm", device_for("rtx4090"), advise=False)
        assert again.fits and again.total_bytes == a.total_bytes
        assert a.total_bytes <= 24 * 2**30


def test_a_run_that_fits_gets_no_advice(llama7b):
    _, e = _run(llama7b, technique="qlora")
    assert e.fits and e.advice == []
