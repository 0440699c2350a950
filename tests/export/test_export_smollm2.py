"""The bundled SmolLM2, tuned for a few quickstart steps, exported and served (slow: real model)."""

from __future__ import annotations

import json

import pytest

from graft.export import export
from testkit import running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A LoRA run on the quickstart task: 4 steps of 8 at a high learning rate (the adapter clearly moves)."""
    from graft.quickstart.run import quickstart_config
    from graft.quickstart.task import make_rows
    from graft.train.recipe import train

    root = tmp_path_factory.mktemp("smollm2_tuned")
    (root / "train.json").write_text(json.dumps(make_rows(32, seed=1)))
    (root / "eval.json").write_text(json.dumps(make_rows(8, seed=2)))
    cfg = quickstart_config(str(root / "runs"), root, steps=4, run_name="tuned")
    return train(cfg).run_dir


def test_gguf_f16_and_q8_0_agree_with_the_merged_model(tuned, tmp_path):
    found = {m["type"]: {c["with"]: c for c in m["verification"]} for m in export(tuned, "gguf", tmp_path, ["f16", "q8_0"])}
    assert found["f16"]["transformers"]["top1_match"] >= 0.99
    assert found["q8_0"]["transformers"]["top1_match"] >= 0.95
    assert found["f16"]["transformers"]["positions"] >= 150
    if "llama.cpp" in found["f16"]:  # llama-cpp-python installed (optional)
        assert found["f16"]["llama.cpp"]["top1_match"] >= 0.99
        assert found["q8_0"]["llama.cpp"]["top1_match"] >= 0.9  # llama.cpp also rounds activations to 8 bits


def test_one_server_streams_from_the_tuned_adapter_and_the_base(tuned, tmp_path):
    from openai import OpenAI

    from graft.inference import open_pool
    from graft.server import ServerSettings, create_app

    pool = open_pool(tuned)
    with running(create_app(pool, ServerSettings(db=str(tmp_path / "served.db")))) as url:
        client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        ids = [m.id for m in client.models.list()]
        assert ids == ["smollm2-135m-instruct", "tuned"]
        ask = [{"role": "user", "content": "Extract the order: Maria from Lisbon ordered two lamps on May 3, 2024."}]
        replies = {}
        for model in ids:
            chunks = list(client.chat.completions.create(model=model, messages=ask, stream=True, temperature=0,
                                                         max_tokens=24))
            replies[model] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert chunks[-1].choices[0].finish_reason in {"stop", "length"} and len(chunks) > 3
            assert replies[model] == pool.complete(model, ask, max_new_tokens=24, temperature=0).text
        assert replies["tuned"] != replies["smollm2-135m-instruct"]
        rows = client.get("/monitor/requests", cast_to=object)["data"]
        assert sorted(r["model"] for r in rows) == ids
