"""The bundled SmolLM2, tuned for a few quickstart steps, exported and served, each through the `graft`
command in its own process as a user runs it (slow: the real model; kept out of the test process so
its memory does not linger into the memory-measuring tests)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from testkit import run_graft

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_home(real_graft_home):
    with pytest.MonkeyPatch.context() as mp:
        if real_graft_home is None:
            mp.delenv("GRAFT_HOME", raising=False)
        else:
            mp.setenv("GRAFT_HOME", real_graft_home)
        yield


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, real_home):
    """A LoRA run on the quickstart task: 4 steps of 8 at the quickstart's learning rate."""
    from graft.quickstart.run import quickstart_config
    from graft.quickstart.task import make_rows

    root = tmp_path_factory.mktemp("smollm2_tuned")
    (root / "train.json").write_text(json.dumps(make_rows(32, seed=1)))
    (root / "eval.json").write_text(json.dumps(make_rows(8, seed=2)))
    quickstart_config(str(root / "runs"), root, steps=4, run_name="tuned").save(root / "run.yaml")
    done = run_graft("train", "-c", root / "run.yaml", timeout=600)
    assert done.returncode == 0, done.stderr
    return root / "runs" / "tuned"


def test_gguf_f16_and_q8_0_agree_with_the_merged_model(tuned, tmp_path):
    done = run_graft("export", tuned, "--format", "gguf", "--quant", "f16,q8_0", "--out", tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    found = {}
    for quant in ("f16", "q8_0"):
        manifest = json.loads((tmp_path / "gguf" / f"tuned-{quant}.json").read_text())
        assert (tmp_path / "gguf" / f"tuned-{quant}.gguf").stat().st_size == manifest["files"][0]["bytes"]
        found[quant] = {c["with"]: c for c in manifest["verification"]}
    assert found["f16"]["transformers"]["top1_match"] >= 0.99
    assert found["q8_0"]["transformers"]["top1_match"] >= 0.95
    assert found["f16"]["transformers"]["positions"] >= 150
    if "llama.cpp" in found["f16"]:  # llama-cpp-python installed (optional)
        assert found["f16"]["llama.cpp"]["top1_match"] >= 0.99
        assert found["q8_0"]["llama.cpp"]["top1_match"] >= 0.9  # llama.cpp also rounds activations to 8 bits


def test_one_server_streams_from_the_tuned_adapter_and_the_base(tuned, tmp_path):
    from openai import OpenAI

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    server = subprocess.Popen([sys.executable, "-c", "from graft.cli import main; main()", "serve", str(tuned),
                               "--port", str(port), "--db", str(tmp_path / "served.db")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=120)
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                ids = [m.id for m in client.models.list()]
                break
            except Exception:
                assert time.monotonic() < deadline, "graft serve did not come up"
                time.sleep(1)
        assert ids == ["smollm2-135m-instruct", "tuned"]
        ask = [{"role": "user", "content": "Extract the order: Maria from Lisbon ordered two lamps on May 3, 2024."}]
        replies = {}
        for model in ids:
            chunks = list(client.chat.completions.create(model=model, messages=ask, stream=True, temperature=0,
                                                         max_tokens=24))
            replies[model] = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert chunks[-1].choices[0].finish_reason in {"stop", "length"} and len(chunks) > 3
            whole = client.chat.completions.create(model=model, messages=ask, temperature=0, max_tokens=24)
            assert replies[model] == whole.choices[0].message.content
        assert replies["tuned"] != replies["smollm2-135m-instruct"]
        rows = client.get("/monitor/requests", cast_to=object)["data"]
        assert sorted(r["model"] for r in rows) == sorted(ids * 2)
    finally:
        server.terminate()
        server.wait(30)
