"""The server under test: a pool on the tiny Llama (a trained graft run as MODEL, plus a random peft
LoRA), served by real uvicorn on a free localhost port in a background thread."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from testkit import TOKEN, running, torch_threads


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def lora_folder(tiny_model_dir, tmp_path_factory) -> Path:
    """A peft LoRA on the tiny model with random B (peft starts B at zero: no effect)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    folder = tmp_path_factory.mktemp("lora") / "alpha"
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tuned_run(tiny_model_dir, tmp_path_factory, helpers) -> Path:
    from graft.train.recipe import train

    root = tmp_path_factory.mktemp("served_run")
    data = root / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    return train(helpers.tiny_config(tiny_model_dir, data, root / "runs", run_name="colours")).run_dir


@pytest.fixture(scope="session")
def served_pool(tuned_run, lora_folder):
    from graft.inference.pool import open_pool

    return open_pool(tuned_run, {"alpha": lora_folder})


@pytest.fixture(scope="session")
def serve():
    """serve(pool, **settings) -> base URL of a running app; each with its own database file."""
    from graft.server import ServerSettings, create_app

    stack, count = [], [0]

    def start(pool, tmp: Path, **settings):
        count[0] += 1
        settings.setdefault("db", str(tmp / f"served-{count[0]}.db"))
        settings.setdefault("workers", 0)  # these tests serve chat; job workers are tested in tests/jobs
        app = create_app(pool, ServerSettings(**settings))
        ctx = running(app)
        url = ctx.__enter__()
        stack.append(ctx)
        return url, app

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


@pytest.fixture(scope="module")
def server(serve, served_pool, tmp_path_factory):
    """(base URL, app) of the shared pool behind TOKEN."""
    return serve(served_pool, tmp_path_factory.mktemp("server"), token=TOKEN)


@pytest.fixture
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=f"{server[0]}/v1", api_key=TOKEN, max_retries=0, timeout=60)
