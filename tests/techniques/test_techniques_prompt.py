"""The prompt family (prompt tuning, prefix tuning, p-tuning): options, exact trainable counts,
padded batches that padding cannot change, packing refused, resume, generation and scoring,
and classification on a tiny BERT."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from graft.data.batching import pad
from graft.data.tokenize import IGNORE, Tokenized
from graft.errors import ConfigError
from graft.evaluate.generate import generate_batch, render_prompt
from graft.models import load_model
from graft.techniques import ApplyContext, count_parameters, get_technique
from graft.techniques.prompt_common import TRAINING_STATE
from graft.train.loss import forward_logits
from graft.train.recipe import train
from graft.train.run_folder import RunFolder
from testkit import StopAfter

PROMPT = ("prompt-tuning", "prefix-tuning", "p-tuning")
HIDDEN, LAYERS, KV_WIDTH = 64, 2, 32  # the tiny Llama: 2 key/value heads of 16


def _applied(model_dir, name, **options):
    torch.manual_seed(0)
    base, tokenizer = load_model(str(model_dir), task="causal-lm")
    tech = get_technique(name)
    return tech.apply(base, tech.parse(options), ApplyContext(model_path=model_dir)), tokenizer


# -- options ------------------------------------------------------------------------------------


def test_text_init_without_text_names_init_text(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    with pytest.raises(ConfigError, match="init_text"):
        make_config(tiny_model_dir, tiny_chat_data, tmp_path, technique={"name": "prompt-tuning", "init": "text"})
    make_config(tiny_model_dir, tiny_chat_data, tmp_path, technique={"name": "prompt-tuning", "init": "text", "init_text": "colour"})


@pytest.mark.parametrize("name, options, option", [
    ("p-tuning", {"encoder_layers": 3}, "encoder_layers"),  # the MLP's depth is fixed: not silently ignored
    ("prefix-tuning", {"virtual_tokens": 0}, "virtual_tokens"),
    ("p-tuning", {"encoder": "gru"}, "encoder"),
])
def test_bad_options_name_the_option(name, options, option, tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    with pytest.raises(ConfigError, match=option):
        make_config(tiny_model_dir, tiny_chat_data, tmp_path, technique={"name": name, **options})


def test_family_and_flags():
    for name in PROMPT:
        tech = get_technique(name)
        assert (tech.family, tech.mergeable, tech.packs_sequences) == ("prompt", False, False)
        assert tech.kinds == {"causal-lm", "classification"}
        assert tech.memory(tech.parse({"virtual_tokens": 7})).virtual_tokens == 7


# -- trainable counts ---------------------------------------------------------------------------


def test_prompt_tuning_trains_exactly_the_virtual_embeddings(tiny_model_dir):
    model, _ = _applied(tiny_model_dir, "prompt-tuning", virtual_tokens=8)
    assert count_parameters(model)[0] == 8 * HIDDEN


def test_text_init_starts_from_the_texts_embeddings(tiny_model_dir):
    model, tokenizer = _applied(tiny_model_dir, "prompt-tuning", virtual_tokens=8, init="text", init_text="The plum is")
    ids = tokenizer("The plum is")["input_ids"]
    ids = (ids * 8)[:8]  # repeated to fill the virtual tokens
    want = model.get_input_embeddings().weight[ids]
    assert torch.equal(model.prompt_encoder["default"].embedding.weight, want)


def test_prefix_tuning_count_is_a_kv_prefix_per_layer(tiny_model_dir):
    model, _ = _applied(tiny_model_dir, "prefix-tuning", virtual_tokens=8)
    assert count_parameters(model)[0] == 8 * LAYERS * 2 * KV_WIDTH
    model, _ = _applied(tiny_model_dir, "prefix-tuning", virtual_tokens=8, projection=True, projection_hidden=16)
    # with grouped KV heads peft's token width is the KV width: embedding, Linear(kv -> 16), Linear(16 -> layers * 2 * kv)
    assert count_parameters(model)[0] == 8 * KV_WIDTH + (KV_WIDTH * 16 + 16) + (16 * LAYERS * 2 * KV_WIDTH + LAYERS * 2 * KV_WIDTH)


@pytest.mark.parametrize("encoder", ["mlp", "lstm"])
def test_p_tuning_count_is_its_encoder(encoder, tiny_model_dir):
    v, d, h = 8, HIDDEN, 16
    model, _ = _applied(tiny_model_dir, "p-tuning", virtual_tokens=v, encoder=encoder, encoder_hidden=h)
    if encoder == "mlp":  # d -> h -> h -> d
        head = (d * h + h) + (h * h + h) + (h * d + d)
    else:  # 2-layer bidirectional LSTM (inputs d, then 2h), then 2h -> 2h -> d
        lstm = sum(2 * (4 * h * n_in + 4 * h * h + 8 * h) for n_in in (d, 2 * h))
        head = lstm + (2 * h * 2 * h + 2 * h) + (2 * h * d + d)
    assert count_parameters(model)[0] == v * d + head


# -- padded batches -----------------------------------------------------------------------------


def _items(tokenizer):
    texts = ["The plum is purple.", "Say the colour of the sky, the grass and the sea: blue, green, blue.",
             "What colour is the lemon? The lemon is yellow, and so is the banana."]
    out = []
    for t in texts:
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        out.append(Tokenized(ids, [IGNORE] * 2 + ids[2:]))  # the first tokens carry no loss, as a prompt would
    return out


@pytest.mark.parametrize("name", PROMPT)
def test_padding_changes_nothing(name, tiny_model_dir):
    model, tokenizer = _applied(tiny_model_dir, name, virtual_tokens=4)
    model.eval()
    items = _items(tokenizer)
    assert len(items[0].input_ids) < min(len(i.input_ids) for i in items[1:])
    with torch.no_grad():
        alone = F.cross_entropy(forward_logits(model, pad(items[:1], 0)), pad(items[:1], 0).targets, reduction="sum")
        for pad_id in (0, tokenizer.pad_token_id, 7):
            batch = pad(items, pad_id)
            logits = forward_logits(model, batch)
            first = batch.target_rows == 0
            inside = F.cross_entropy(logits[first], batch.targets[first], reduction="sum")
            assert inside.item() == pytest.approx(alone.item(), rel=1e-5, abs=1e-5)
    # and the virtual tokens matter: the loss is not the base model's
    base, _ = load_model(str(tiny_model_dir), task="causal-lm")
    with torch.no_grad():
        plain = F.cross_entropy(forward_logits(base.eval(), pad(items[:1], 0)), pad(items[:1], 0).targets, reduction="sum")
    assert abs(plain.item() - alone.item()) > 1e-3


def test_packing_is_refused(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    for name in PROMPT:
        cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs", **{"technique": {"name": name}, "data.packing": True})
        with pytest.raises(ConfigError, match=r"data\.packing"):
            train(cfg)
    assert not (tmp_path / "runs").exists()  # refused before anything was written


# -- resume -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [("prefix-tuning", {"projection": True})])  # p-tuning: the round-trip test
def test_resume_continues_the_encoder_not_its_output(name, options, tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    """peft saves p-tuning's and a projected prefix's *output*; resume must restore the encoder itself."""
    over = {"technique": {"name": name, "virtual_tokens": 4, **options}, "train.lr": 2e-2, "train.max_steps": 6,
            "data.eval_size": 0}
    whole = train(make_config(tiny_model_dir, tiny_chat_data, tmp_path / "a", **over))
    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "b", **over)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=StopAfter(3))
    resumed = train(cfg, resume_dir=tmp_path / "b" / "run")
    assert resumed.summary["steps"] == 6

    def losses(run):
        return [r["loss"] for r in RunFolder(run).read_metrics() if r["type"] == "train"]

    assert losses(resumed.run_dir) == pytest.approx(losses(whole.run_dir), rel=1e-5)
    a, b = (load_file(r / "adapter" / TRAINING_STATE) for r in (whole.run_dir, resumed.run_dir))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# -- generation and scoring ---------------------------------------------------------------------

CONVERSATIONS = [[{"role": "user", "content": "What colour is the plum?"}],
                 [{"role": "user", "content": "Say the colour of the sky, the grass and the sea."}]]


def _greedy(model, tokenizer, messages, n):
    """Reference: greedy decoding by full forwards, no cache, no padding."""
    ids = tokenizer(render_prompt(tokenizer, messages), return_tensors="pt", add_special_tokens=False)["input_ids"]
    for _ in range(n):
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return tokenizer.decode(ids[0, -n:], skip_special_tokens=True).strip()


@pytest.mark.parametrize("name", PROMPT)
def test_generation_follows_the_prompt(name, tiny_model_dir):
    model, tokenizer = _applied(tiny_model_dir, name, virtual_tokens=4)
    want = [_greedy(model, tokenizer, c, 5) for c in CONVERSATIONS]
    assert [generate_batch(model, tokenizer, [c], max_new_tokens=5)[0] for c in CONVERSATIONS] == want
    base, _ = load_model(str(tiny_model_dir), task="causal-lm")
    assert [_greedy(base, tokenizer, c, 5) for c in CONVERSATIONS] != want  # the prompt is in effect


def test_batched_generation_with_left_padding_prefix(tiny_model_dir):
    # the prefix is a cache, and peft shifts position ids past it: left padding is safe
    model, tokenizer = _applied(tiny_model_dir, "prefix-tuning", virtual_tokens=4)
    want = [_greedy(model, tokenizer, c, 5) for c in CONVERSATIONS]
    assert generate_batch(model, tokenizer, CONVERSATIONS, max_new_tokens=5) == want


@pytest.mark.parametrize("name", ["prompt-tuning", "p-tuning"])
def test_batched_generation_with_left_padding_prepended(name, tiny_model_dir):
    """peft drops position ids for prepended virtual tokens, so generate_batch must not pad such rows."""
    model, tokenizer = _applied(tiny_model_dir, name, virtual_tokens=4)
    want = [_greedy(model, tokenizer, c, 5) for c in CONVERSATIONS]
    assert generate_batch(model, tokenizer, CONVERSATIONS, max_new_tokens=5) == want


def test_evaluate_a_prompt_tuned_run(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    """evaluate() scores one example a row (Loaded.packed is False) and can still compare with the base."""
    from graft.data.load import load_examples
    from graft.data.tokenize import tokenize_examples
    from graft.evaluate.evaluate import evaluate
    from graft.inference import load_for_inference
    from graft.train.loss import mean_loss

    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs", **{
        "technique": {"name": "prompt-tuning", "virtual_tokens": 4}, "train.lr": 5e-2, "train.max_steps": 3})
    run = train(cfg).run_dir
    loaded = load_for_inference(run)
    assert not loaded.packed
    out = evaluate(run, data=str(tiny_chat_data), limit=4, compare_base=True, max_new_tokens=3, loaded=loaded)
    assert out["tuned"]["answered"] == out["base"]["answered"] == 4

    items = tokenize_examples(load_examples(str(tiny_chat_data), limit=4).examples, loaded.tokenizer, 1024).items
    pad_id = loaded.tokenizer.pad_token_id
    assert out["tuned"]["loss"] == pytest.approx(mean_loss(loaded.model, items, packed=False, pad_id=pad_id), rel=1e-5)
    base, _ = load_model(str(tiny_model_dir), task="causal-lm")
    assert out["base"]["loss"] == pytest.approx(mean_loss(base, items), rel=1e-5)
    assert out["tuned"]["loss"] != pytest.approx(out["base"]["loss"], rel=1e-3)


# -- classification -----------------------------------------------------------------------------


COLOURS = {"apple": "red", "banana": "yellow", "grass": "green", "sky": "blue", "snow": "white", "coal": "black",
           "orange": "orange", "plum": "purple", "lemon": "yellow", "cherry": "red", "leaf": "green", "sea": "blue"}


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    """A random 2-layer BERT with a word-level vocabulary of the toy task, saved as a model folder."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    words = sorted(set(COLOURS) | set(COLOURS.values()) | {"the", "is", "a", "colour", "of"})
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])})
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, initializer_range=0.2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name, lr", [("prompt-tuning", 1e-1), ("prefix-tuning", 1e-1), ("p-tuning", 3e-2)])
def test_classification_trains_and_reloads(name, lr, tiny_bert_dir, tmp_path, make_config, capture_model):
    from graft.inference import load_for_inference

    warm = {"red", "yellow", "orange", "purple"}
    rows = [{"text": f"the {t} is {c}", "label": "warm" if c in warm else "cool"} for t, c in COLOURS.items()] * 4
    data = tmp_path / "colours.json"
    data.write_text(json.dumps(rows))
    cfg = make_config(tiny_bert_dir, data, tmp_path / "runs", **{
        "technique": {"name": name, "virtual_tokens": 4}, "train.lr": lr, "train.max_steps": 40,
        "train.batch_size": 64})  # the whole set each step: a loss that falls steadily
    result = train(cfg)
    assert result.summary["task"] == "classification" and "eval_accuracy" in result.summary
    losses = [r["loss"] for r in RunFolder(result.run_dir).read_metrics() if r["type"] == "train"]
    # 40 full-batch steps: the prompt (with the head) learns the split
    assert sum(losses[-3:]) / 3 < 0.5 * losses[0], losses
    assert result.summary["eval_accuracy"] == 100.0

    loaded = load_for_inference(result.run_dir)
    assert (loaded.task, loaded.packed, loaded.mergeable) == ("classification", False, False)
    enc = loaded.tokenizer(["the plum is purple", "the sea is a colour of the sky"], return_tensors="pt", padding=True)
    enc = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    with torch.no_grad():
        got = loaded.model.eval()(**enc).logits
        want = capture_model.model.eval()(**enc).logits
    assert torch.allclose(got, want, atol=1e-5), (got, want)  # the prompt and the trained head both came back
    with torch.no_grad():  # and the shorter row, right-padded, scores as it does alone
        alone = loaded.model(**loaded.tokenizer(["the plum is purple"], return_tensors="pt", return_token_type_ids=False)).logits
    assert torch.allclose(alone[0], got[0], atol=1e-5)
