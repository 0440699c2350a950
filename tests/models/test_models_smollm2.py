"""The real bundled SmolLM2 (slow): loading through the GGUF cache, generation, a short fine-tune.

These use the real graft cache (~/.cache/graft, or the user's GRAFT_HOME) so the one-off GGUF
conversion is shared with normal use; see the GRAFT_HOME fixtures in tests/conftest.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from graft.models import CATALOG
from graft.paths import graft_home

pytestmark = pytest.mark.slow

NAME = "smollm2-135m-instruct"
ALPACA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "alpaca_5000" / "alpaca_5000.json"


@pytest.fixture
def bundled():
    if CATALOG[NAME].location() is None:
        pytest.skip(f"{CATALOG[NAME].package} is not installed")
    from graft.models import resolve

    return resolve(NAME)


def test_uses_the_real_cache(bundled, private_graft_home):
    assert graft_home() != private_graft_home
    assert bundled.folder == graft_home() / "models" / NAME


def test_load_and_generate_paris(bundled):
    from transformers import LlamaForCausalLM

    from graft.evaluate.generate import generate_batch
    from graft.models import load_model

    model, tokenizer = load_model(NAME)
    assert isinstance(model, LlamaForCausalLM)
    folder = bundled.folder
    assert (folder / "model.safetensors").is_file()
    marker = json.loads((folder / "graft-source.json").read_text())
    assert marker["gguf"] == str(bundled.gguf)
    assert not bundled.needs_conversion
    assert tokenizer.pad_token is not None and tokenizer.chat_template

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matmuls: one thread is fastest, and far faster on a busy machine
    try:
        answers = generate_batch(model, tokenizer, [[{"role": "user", "content": "What is the capital of France?"}]],
                                 max_new_tokens=24)
    finally:
        torch.set_num_threads(threads)
    assert len(answers) == 1 and "Paris" in answers[0], answers


def test_short_finetune_adapter_reloads_with_identical_logits(bundled, tmp_path, helpers, monkeypatch):
    if not ALPACA.is_file():
        pytest.skip(f"shared dataset not present: {ALPACA}")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from graft.config import RunConfig
    from graft.train.recipe import train
    from graft.train.run_folder import RunFolder

    cfg = RunConfig.from_dict({
        "model": {"name": NAME},
        "data": {"path": str(ALPACA), "skip_bad_rows": True, "limit": 16, "max_length": 128, "eval_size": 0},
        "train": {"max_steps": 6, "epochs": 2, "batch_size": 4, "lr": 1e-3, "seed": 0,
                  # one thread: with two, a busy 2-core machine made this test take 224 s instead of 21 s
                  "threads": 1,
                  "scheduler": "constant", "warmup_ratio": 0.0},
        "output_dir": str(tmp_path / "runs"),
        "run_name": "smol",
    })
    capture = helpers.install_model_capture(monkeypatch)
    result = train(cfg)
    summary = result.summary
    assert (summary["status"], summary["steps"], summary["batches_per_epoch"]) == ("completed", 6, 4)
    assert summary["data"]["train_examples"] == 16  # 6 steps x 4 rows: the first rows come round again
    rows = [r for r in RunFolder(result.run_dir).read_metrics() if r["type"] == "train"]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    # steps 5 and 6 see rows from steps 1-4 again (epoch 2, a new shuffle): the model has learnt them
    assert sum(r["loss"] for r in rows[4:]) / 2 < sum(r["loss"] for r in rows[:4]) / 4

    tokenizer = AutoTokenizer.from_pretrained(bundled.folder)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Give three tips for staying healthy."}],
                                           tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    in_run_model = capture.model.eval()
    with torch.no_grad():
        in_run = in_run_model(input_ids=ids).logits
        reloaded = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(bundled.folder, dtype=torch.float32), result.run_dir / "adapter"
        ).eval()
        again = reloaded(input_ids=ids).logits
        with reloaded.disable_adapter():
            plain = reloaded(input_ids=ids).logits
    assert torch.allclose(again, in_run, rtol=0, atol=1e-6), (again - in_run).abs().max()
    assert (plain - in_run).abs().max() > 1e-2, "the adapter must change the logits"
