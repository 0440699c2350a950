"""Shared fixtures: a tiny random Llama with a tiny ChatML tokenizer, toy chat data, small configs.

Everything here is built locally in a second or two: no download, no bundled model. Tests marked
``slow`` use the real bundled SmolLM2 and the real graft cache (so its one-off GGUF conversion is
reused); every other test gets a private GRAFT_HOME so nothing is written to the user's cache.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from graft.config import RunConfig, apply_overrides

IM_START, IM_END = "<|im_start|>", "<|im_end|>"

# ChatML: every message is  <|im_start|>ROLE\nCONTENT<|im_end|>\n ; a generation prompt opens an
# assistant turn. Written with expressions only, so Jinja's whitespace trimming cannot change it.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' ~ message['role'] ~ '\\n' ~ message['content'] ~ '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# The toy task: a fixed colour per thing, asked in a few ways. Small enough to learn in a few dozen steps.
THINGS = {
    "apple": "red", "banana": "yellow", "grass": "green", "sky": "blue", "snow": "white", "coal": "black",
    "orange": "orange", "plum": "purple", "lemon": "yellow", "cherry": "red", "leaf": "green",
    "sea": "blue", "milk": "white", "night": "black", "carrot": "orange", "grape": "purple",
}
QUESTIONS = ["What colour is the {t}?", "Say the colour of the {t}.", "Which colour has the {t}?", "Colour of the {t}?"]


def toy_rows() -> list[dict[str, str]]:
    """64 Alpaca rows: 16 things x 4 phrasings -> 'The THING is COLOUR.'"""
    return [
        {"instruction": q.format(t=t), "input": "", "output": f"The {t} is {c}."}
        for q in QUESTIONS
        for t, c in THINGS.items()
    ]


def _corpus() -> list[str]:
    """A few KB of English-ish text for training the tokenizer, covering the toy task's words."""
    rng = random.Random(0)
    words = (
        "the a an is are was of to and in on for with that this it as at by from or be has have "
        "what which say colour color word reverse answer question user assistant system you are helpful "
        "one two three four five six seven eight nine ten small large model data train test loss"
    ).split() + list(THINGS) + sorted(set(THINGS.values()))
    lines = [f"{q.format(t=t)} The {t} is {c}." for q in QUESTIONS for t, c in THINGS.items()]
    for _ in range(300):
        n = rng.randint(4, 12)
        sent = " ".join(rng.choice(words) for _ in range(n))
        lines.append(sent.capitalize() + rng.choice([".", "?", "!", ","]))
    return lines


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A byte-level BPE tokenizer (vocab ~500) with ChatML specials and chat template, saved to a folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=[IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=IM_END,
        additional_special_tokens=[IM_START],
    )
    fast.chat_template = CHAT_TEMPLATE
    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer_dir: Path) -> Path:
    """A local HF folder: random 2-layer Llama (safetensors) + the tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        # With the default 0.02 the frozen tied embeddings are so small that the logits can barely
        # move (max logit ~1.3): LoRA alone could not push the loss below ~ln(vocab) - 2.5.
        initializer_range=0.2,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_chat_data(tmp_path: Path) -> Path:
    """64 rows of the toy colour task as an Alpaca JSON file."""
    path = tmp_path / "toy_alpaca.json"
    path.write_text(json.dumps(toy_rows()))
    return path


def tiny_config(model_dir: str | Path, data_path: str | Path, output_dir: str | Path, **overrides: Any) -> RunConfig:
    """A RunConfig for the tiny model; overrides are dotted keys: tiny_config(..., **{"train.max_steps": 5})."""
    raw = {
        "model": {"name": str(model_dir)},
        "data": {"path": str(data_path), "max_length": 64, "eval_size": 8},
        "technique": {"name": "lora", "r": 8, "alpha": 16},
        "train": {
            # threads 1: for a model this small a second thread only adds synchronisation, and when
            # the machine is busy a 2-thread pool runs ~40x slower (measured: 12 s vs 0.3 s, 30 steps)
            "batch_size": 8, "lr": 5e-3, "seed": 0, "threads": 1, "scheduler": "constant",
            "warmup_ratio": 0.0, "max_steps": 10,
        },
        "output_dir": str(output_dir),
        "run_name": "run",
    }
    return RunConfig.from_dict(apply_overrides(raw, overrides))


@pytest.fixture
def make_config():
    """The tiny_config helper as a fixture, for test modules that prefer not to import conftest."""
    return tiny_config


# -- GRAFT_HOME ---------------------------------------------------------------------------------

_UNSET = object()
_PRIVATE_HOME: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def _private_graft_home(tmp_path_factory):
    """For the whole session GRAFT_HOME points into a temporary folder; yields the original value."""
    original = os.environ.get("GRAFT_HOME", _UNSET)
    _PRIVATE_HOME.append(tmp_path_factory.mktemp("graft_home"))
    os.environ["GRAFT_HOME"] = str(_PRIVATE_HOME[-1])
    yield original
    if original is _UNSET:
        os.environ.pop("GRAFT_HOME", None)
    else:
        os.environ["GRAFT_HOME"] = original


@pytest.fixture
def private_graft_home(_private_graft_home) -> Path:
    """The session's temporary GRAFT_HOME (what non-slow tests see)."""
    return _PRIVATE_HOME[-1]


@pytest.fixture(scope="session")
def real_graft_home(_private_graft_home) -> str | None:
    """The user's GRAFT_HOME (None: the default ~/.cache/graft). Module fixtures of slow tests need it:
    they are set up before the function-scoped fixture below points GRAFT_HOME there."""
    return None if _private_graft_home is _UNSET else _private_graft_home


@pytest.fixture(autouse=True)
def _graft_home_for_slow_tests(request, _private_graft_home, monkeypatch):
    """Tests marked slow use the real cache (~/.cache/graft or the user's GRAFT_HOME)."""
    if request.node.get_closest_marker("slow") is None:
        return
    if _private_graft_home is _UNSET:
        monkeypatch.delenv("GRAFT_HOME", raising=False)
    else:
        monkeypatch.setenv("GRAFT_HOME", _private_graft_home)


# -- the model object a training run ends with ----------------------------------------------------


class ModelCapture:
    """Holds the trainable model that graft.train.recipe.train() built (see the capture_model fixture)."""

    def __init__(self) -> None:
        self.models: list[Any] = []

    @property
    def model(self):
        assert self.models, "train() never applied a technique"
        return self.models[-1]


def install_model_capture(monkeypatch) -> ModelCapture:
    """Wrap the technique that train() applies, so the test keeps the very model object it trains.

    train() returns only the run folder and summary; the technique registry lookup
    (graft.train.recipe.get_technique) is the one seam where the trainable model passes by.
    """
    import dataclasses

    import graft.train.recipe as recipe

    capture = ModelCapture()
    real_get = recipe.get_technique

    def get_technique(name):
        tech = real_get(name)

        def apply(model, options, ctx):
            out = tech.apply(model, options, ctx)
            capture.models.append(out)
            return out

        return dataclasses.replace(tech, apply=apply)

    monkeypatch.setattr(recipe, "get_technique", get_technique)
    return capture


@pytest.fixture
def capture_model(monkeypatch) -> ModelCapture:
    return install_model_capture(monkeypatch)


@pytest.fixture(scope="session")
def helpers():
    """The plain helpers of this file, for fixtures of any scope (test modules cannot import conftest
    reliably: tests/data has a conftest.py of its own)."""
    from types import SimpleNamespace

    return SimpleNamespace(tiny_config=tiny_config, toy_rows=toy_rows, install_model_capture=install_model_capture)


# -- order ------------------------------------------------------------------------------------------

# These measure the whole test process's memory (VmHWM / VmRSS): they run first, while the process is
# fresh, because what earlier tests leave allocated (model copies, arenas, server threads) moves the
# baseline they compare against.
WHOLE_PROCESS_MEMORY = ("tests/memory/test_memory_measure.py", "tests/memory/test_memory_calibration.py")


def pytest_collection_modifyitems(session, config, items):
    first = [i for i in items if i.nodeid.startswith(WHOLE_PROCESS_MEMORY)]
    items[:] = first + [i for i in items if not i.nodeid.startswith(WHOLE_PROCESS_MEMORY)]
