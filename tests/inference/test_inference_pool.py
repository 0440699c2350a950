"""ModelPool: several adapters on one base, each replying as it would loaded alone.

Adapters are made in a second: peft LoRA/IA3 on the tiny Llama with random (non-zero) weights,
saved in PEFT format; one graft run (full fine-tune, 2 steps) stands for what cannot share.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from graft.errors import ConfigError
from graft.inference import load_for_inference, stream_reply
from graft.inference.pool import ModelPool, UnknownModelError, open_pool, parse_adapters
from testkit import torch_threads

ASK = [{"role": "user", "content": "What colour is the sky?"}]
TOKENS = 12


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def peft_adapter(base: Path, folder: Path, seed: int, config) -> Path:
    """A peft adapter on `base` with random weights (LoRA's B starts at zero otherwise: no effect)."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.3 + (1.0 if "ia3_" in name else 0.0))
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    from peft import IA3Config, LoraConfig

    root = tmp_path_factory.mktemp("adapters")
    return {
        "alpha": peft_adapter(tiny_model_dir, root / "alpha", 1, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])),
        "beta": peft_adapter(tiny_model_dir, root / "beta", 2, LoraConfig(r=8, target_modules="all-linear")),
        "gamma": peft_adapter(tiny_model_dir, root / "gamma", 3, IA3Config(target_modules=["k_proj", "v_proj", "down_proj"],
                                                                           feedforward_modules=["down_proj"])),
    }


@pytest.fixture(scope="module")
def full_run(tiny_model_dir, tmp_path_factory, helpers) -> Path:
    import json

    from graft.train.recipe import train

    root = tmp_path_factory.mktemp("full_run")
    data = root / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    cfg = helpers.tiny_config(tiny_model_dir, data, root / "runs", **{"technique": {"name": "full"}, "train.max_steps": 2,
                                                                       "run_name": "fully"})
    return train(cfg).run_dir


@pytest.fixture(scope="module")
def pool(tiny_model_dir, adapters, full_run) -> ModelPool:
    return ModelPool(str(tiny_model_dir), {**adapters, "fully": full_run})


def alone(target) -> str:
    """The reply of `target` loaded by itself, as `graft chat` loads it."""
    loaded = load_for_inference(target, merge=True)
    return "".join(stream_reply(loaded.model, loaded.tokenizer, ASK, TOKENS))


def test_peft_adapters_share_the_one_base(pool, tiny_model_dir):
    from peft import PeftModel

    base = pool.base_id
    assert [m.id for m in pool.models()] == [base, "alpha", "beta", "gamma", "fully"]
    shared = {m.id for m in pool.models() if m.shared}
    assert shared == {base, "alpha", "beta"}
    model = pool.model(base)
    assert isinstance(model, PeftModel) and pool.model("alpha") is model and pool.model("beta") is model
    # the base's weights exist once: the LoRA layers of both adapters wrap the very same tensor
    q = model.get_base_model().model.layers[0].self_attn.q_proj
    assert set(q.lora_A) == {"adapter_1", "adapter_2"}
    assert pool.model("gamma") is not model and pool.model("fully") is not model
    notes = {m.id: m.note for m in pool.models()}
    assert "IA3 adapter cannot join the LORA adapters" in notes["gamma"]
    assert notes["fully"] == "full is not a peft adapter"
    described = pool.describe()
    assert "alpha: lora from" in described and "gamma: ia3 from" in described  # plain peft folders: peft's type
    assert "fully: full from" in described and "own copy: full is not a peft adapter" in described


def test_each_model_replies_as_it_would_alone(pool, tiny_model_dir, adapters, full_run):
    expected = {"alpha": alone(adapters["alpha"]), "beta": alone(adapters["beta"]), "gamma": alone(adapters["gamma"]),
                "fully": alone(full_run), pool.base_id: alone(tiny_model_dir)}
    assert len(set(expected.values())) == 5, expected  # every adapter changes what the model says
    # switch back and forth: set_adapter/disable_adapter must leave no trace on the next request
    for model_id in ["alpha", pool.base_id, "beta", "alpha", "gamma", pool.base_id, "fully", "beta"]:
        got = pool.complete(model_id, ASK, max_new_tokens=TOKENS)
        assert got.text == expected[model_id], model_id
    assert pool.complete(str(tiny_model_dir), ASK, max_new_tokens=TOKENS).text == expected[pool.base_id]  # the spec works too


def _configs(kind: str):
    from peft import LoraConfig, PromptTuningConfig

    if kind == "prompt-tuning":
        return [PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n) for n in (4, 6)]
    return [LoraConfig(r=4, use_dora=True, target_modules=["q_proj"]), LoraConfig(r=4, target_modules=["v_proj"])]


@pytest.mark.parametrize("kind", ["prompt-tuning", "dora+lora"])
def test_other_peft_methods_share_too(tiny_model_dir, tmp_path, kind):
    folders = {f"m{i}": peft_adapter(tiny_model_dir, tmp_path / f"m{i}", 10 + i, c) for i, c in enumerate(_configs(kind))}
    pool = ModelPool(str(tiny_model_dir), folders)
    assert all(m.shared for m in pool.models())
    expected = {**{name: alone(f) for name, f in folders.items()}, pool.base_id: alone(tiny_model_dir)}
    assert len(set(expected.values())) == 3
    for model_id in ["m0", pool.base_id, "m1", "m0", pool.base_id]:
        assert pool.complete(model_id, ASK, max_new_tokens=TOKENS).text == expected[model_id], model_id


def test_stream_pieces_usage_and_stop(pool, tiny_tokenizer):
    reply = pool.stream("alpha", ASK, max_new_tokens=TOKENS)
    pieces = list(reply)
    text = "".join(pieces)
    assert len(pieces) > 1 and reply.usage is not None
    prompt = tiny_tokenizer.apply_chat_template(ASK, tokenize=False, add_generation_prompt=True)
    assert reply.usage.prompt_tokens == len(tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert (reply.usage.completion_tokens, reply.usage.finish_reason) == (TOKENS, "length")

    stop = text[3:6]
    cut = pool.complete("alpha", ASK, max_new_tokens=TOKENS, stop=["never-said", stop])
    assert cut.text == text[: text.index(stop)] and cut.usage.finish_reason == "stop"
    assert cut.usage.completion_tokens < TOKENS


def test_sampling_is_seeded(pool):
    a, b, c = (pool.complete("beta", ASK, max_new_tokens=TOKENS, temperature=1.5, seed=s).text for s in (7, 7, 8))
    assert a == b != c


def test_concurrent_requests_take_turns(pool):
    expected = {m: pool.complete(m, ASK, max_new_tokens=TOKENS).text for m in ("alpha", "beta", pool.base_id)}
    got: dict[str, list[str]] = {m: [] for m in expected}

    def ask(model_id):
        got[model_id].append(pool.complete(model_id, ASK, max_new_tokens=TOKENS).text)

    threads = [threading.Thread(target=ask, args=(m,)) for m in list(expected) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert got == {m: [text, text] for m, text in expected.items()}


def test_a_reply_left_early_frees_the_model(pool):
    expected = pool.complete(pool.base_id, ASK, max_new_tokens=TOKENS).text
    reply = pool.stream("alpha", ASK, max_new_tokens=200)
    next(iter(reply))
    reply.close()  # a client that hangs up: generation stops and the lock and adapter state are released
    assert pool.complete(pool.base_id, ASK, max_new_tokens=TOKENS).text == expected


def test_unknown_model_names_the_known_ones(pool):
    with pytest.raises(UnknownModelError, match="no model 'delta'.*alpha, beta, gamma, fully"):
        pool.stream("delta", ASK)


def test_open_pool_from_a_run_serves_its_base_and_it(full_run, adapters):
    pool = open_pool(full_run, {"alpha": adapters["alpha"]})
    assert pool.default == "fully"
    assert [(m.id, m.shared) for m in pool.models()] == [(pool.base_id, True), ("fully", False), ("alpha", True)]


def test_parse_adapters():
    assert parse_adapters(["a=runs/x", "runs/y/adapter", "c=d=e"]) == {"a": "runs/x", "y": "runs/y/adapter", "c": "d=e"}
    with pytest.raises(ConfigError, match="given twice"):
        parse_adapters(["a=x", "a=y"])
    with pytest.raises(ConfigError, match="NAME=PATH"):
        parse_adapters(["=x"])
