"""Bottleneck adapters (graft's own): identity at start, exact parameter count, untouched base keys,
exact save/load/restore, strict loading, no merging, switching off, unknown models, classification."""

from __future__ import annotations

import pytest
import torch

from graft.errors import ConfigError, RunError
from graft.techniques import ApplyContext, count_parameters, get_technique
from graft.techniques.bottleneck.model import ATTR, WEIGHTS, disabled, merge

TECH = get_technique("bottleneck")


def _llama(folder):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(folder).eval()


def _gpt2(_):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                      bos_token_id=0, eos_token_id=0)).eval()


def _bert_config():
    from transformers import BertConfig

    return BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=64, num_labels=3,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # a steady loss to watch fall


def _bert(_):
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(_bert_config()).eval()


def _apply(model, head=(), **options):
    return TECH.apply(model, TECH.parse(options), ApplyContext(kind="classification" if head else "causal-lm", head=head))


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def _jolt(model, seed=1):
    """Random adapter weights, as training would leave them (fresh ones are the identity)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in getattr(model, ATTR).parameters():
            p.normal_(0, 0.2)
    return model


IDS = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("build", [_llama, _gpt2, _bert], ids=["llama", "gpt2", "bert"])
def test_fresh_adapters_are_the_identity_and_leave_base_keys(build, tiny_model_dir):
    model = build(tiny_model_dir)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    want = _logits(model, IDS)
    model = _apply(model, size=8)
    assert torch.equal(_logits(model, IDS), want)  # zero-initialised `up`: exactly the base model
    ours = [k for k in model.state_dict() if k.startswith(ATTR + ".")]
    assert ours and [k for k in model.state_dict() if k not in ours] == list(base_state)
    assert all(torch.equal(v, base_state[k]) for k, v in model.state_dict().items() if k in base_state)
    assert len(getattr(model, ATTR).points) == 4  # 2 layers x (attention + feed-forward)


@pytest.mark.parametrize("style,size", [("houlsby", 16), ("pfeiffer", 16), ("houlsby", 3), ("pfeiffer", 1)])
def test_trainable_parameters_match_closed_form(style, size, tiny_model_dir):
    model = _apply(_llama(tiny_model_dir), style=style, size=size)
    d, layers = model.config.hidden_size, model.config.num_hidden_layers
    per_adapter = size * (d + 1) + d * (size + 1)
    points = (2 if style == "houlsby" else 1) * layers
    assert count_parameters(model)[0] == points * per_adapter
    assert all(name.startswith(ATTR + ".") for name, p in model.named_parameters() if p.requires_grad)
    if style == "pfeiffer":
        assert all(p.endswith("mlp.down_proj") for p in getattr(model, ATTR).points)


def test_counts_on_the_meta_device_too(tiny_model_dir):
    from transformers import AutoConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = _apply(LlamaForCausalLM(AutoConfig.from_pretrained(tiny_model_dir)), size=16)
    assert count_parameters(model)[0] == 4 * (16 * 65 + 64 * 17)


def test_targets_override_the_insertion_points(tiny_model_dir):
    model = _apply(_llama(tiny_model_dir), size=4, targets=["mlp.up_proj"])
    assert getattr(model, ATTR).points == ["model.layers.0.mlp.up_proj", "model.layers.1.mlp.up_proj"]
    width = model.config.intermediate_size  # the adapter takes the target's output width
    assert count_parameters(model)[0] == 2 * (4 * (width + 1) + width * 5)


def test_unknown_model_without_targets_is_a_config_error(tiny_model_dir):
    from transformers import T5Config, T5ForConditionalGeneration

    t5 = T5ForConditionalGeneration(T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2))
    with pytest.raises(ConfigError, match=r"'t5'.*`targets`"):
        _apply(t5)
    with pytest.raises(ConfigError, match=r"no module name ends with \['nowhere'\].*`targets`"):
        _apply(_llama(tiny_model_dir), targets=["nowhere"])
    assert len(getattr(_apply(t5, targets=["SelfAttention.o", "DenseReluDense.wo"]), ATTR).points) == 4


def test_save_then_load_into_a_fresh_base_gives_the_same_logits(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    settings = TECH.parse({"size": 8, "activation": "gelu"})
    trained = _jolt(TECH.apply(_llama(tiny_model_dir), settings, ApplyContext()))
    want = _logits(trained, IDS)
    TECH.save(trained, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {WEIGHTS, "bottleneck_config.json"}
    assert all(k.startswith(ATTR + ".") for k in load_file(tmp_path / WEIGHTS))  # adapters only, no base
    for options in (settings, None):  # from graft.json's options, or standalone from bottleneck_config.json
        loaded = TECH.load(_llama(tiny_model_dir), tmp_path, options).eval()
        assert torch.equal(_logits(loaded, IDS), want)
    assert not torch.allclose(_logits(_llama(tiny_model_dir), IDS), want)
    # restore (resume): weights into an already-injected model
    fresh = _apply(_llama(tiny_model_dir), size=8, activation="gelu")
    TECH.restore(fresh, tmp_path)
    assert torch.equal(_logits(fresh, IDS), want)
    out = loaded.generate(input_ids=IDS[:1], max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert out.shape == (1, IDS.shape[1] + 3)  # generate() runs through the hooks


def test_a_missing_tensor_is_a_run_error_naming_the_file(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    TECH.save(_apply(_llama(tiny_model_dir), size=8), tmp_path)
    tensors = load_file(tmp_path / WEIGHTS)
    dropped = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != dropped}, tmp_path / WEIGHTS)
    with pytest.raises(RunError, match=rf"{WEIGHTS}.*missing {dropped}"):
        TECH.load(_llama(tiny_model_dir), tmp_path, TECH.parse({"size": 8}))


def test_merging_is_refused_with_the_reason(tiny_model_dir):
    assert TECH.mergeable is False
    with pytest.raises(ConfigError, match="merging is not possible.*nonlinearity"):
        merge(_apply(_llama(tiny_model_dir), size=8))


def test_switched_off_adapters_give_the_base_logits(tiny_model_dir):
    model = _llama(tiny_model_dir)
    base = _logits(model, IDS)
    model = _jolt(_apply(model, size=8))
    tuned = _logits(model, IDS)
    assert not torch.allclose(tuned, base)
    with disabled(model):
        assert torch.equal(_logits(model, IDS), base)
    assert torch.equal(_logits(model, IDS), tuned)
    with model.disable_adapter():
        assert torch.equal(_logits(model, IDS), base)
    assert torch.equal(_logits(model, IDS), tuned)


def test_classification_trains_and_reloads_the_head(tmp_path):
    from transformers import BertForSequenceClassification, BertModel

    from graft.techniques.saved import head_modules

    base_dir = tmp_path / "bert"  # an encoder without a head: every load gets a new random classifier
    torch.manual_seed(0)
    BertModel(_bert_config()).save_pretrained(base_dir)
    model = BertForSequenceClassification.from_pretrained(base_dir)
    head = head_modules(model)
    assert head == ("classifier",)
    model = _apply(model, head=head, size=8)
    assert all(p.requires_grad for p in model.classifier.parameters())
    assert not any(p.requires_grad for p in model.bert.parameters())
    head_before = model.classifier.weight.detach().clone()
    labels = torch.tensor([0, 2])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    model.train()
    losses = []
    for _ in range(15):
        loss = model(input_ids=IDS, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert not torch.equal(model.classifier.weight, head_before)
    assert all(a.up.weight.abs().sum() > 0 for a in getattr(model, ATTR).adapters.values())  # adapters trained too
    want = _logits(model.eval(), IDS)
    TECH.save(model, tmp_path / "adapter")
    torch.manual_seed(123)  # the fresh base gets another random head; load must replace it
    fresh = BertForSequenceClassification.from_pretrained(base_dir).eval()
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)
    loaded = TECH.load(fresh, tmp_path / "adapter", TECH.parse({"size": 8})).eval()
    assert torch.equal(_logits(loaded, IDS), want)
