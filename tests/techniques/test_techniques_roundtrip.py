"""Every built-in technique, end to end on the tiny random Llama: a few steps with a falling loss,
saved, reloaded from the run folder, and giving the very logits of the model it trained; and an
interrupted run that resumes to the same losses and weights as one that never stopped."""

from __future__ import annotations

import json

import pytest
import torch

from graft.inference import load_for_inference
from graft.techniques import get_technique
from graft.train.recipe import train
from graft.train.run_folder import RunFolder
from testkit import StopAfter

# name -> (options for a 64-wide model, learning rate, steps)
CASES = {
    "full": ({}, 2e-3, 12),
    "lora": ({"r": 4, "alpha": 8}, 1e-2, 12),
    "dora": ({"r": 4, "alpha": 8}, 1e-2, 12),
    "qlora": ({"r": 4, "alpha": 8}, 1e-2, 12),
    "qdora": ({"r": 4, "alpha": 8}, 1e-2, 12),
    "adalora": ({"init_r": 6, "target_r": 4}, 1e-2, 16),
    "ia3": ({}, 5e-2, 12),
    "loha": ({"r": 4, "alpha": 8}, 1e-2, 12),
    "lokr": ({"r": 4, "alpha": 8}, 1e-2, 12),
    "vera": ({"r": 32}, 5e-2, 12),
    "prompt-tuning": ({"virtual_tokens": 8}, 5e-2, 12),
    "prefix-tuning": ({"virtual_tokens": 8}, 1e-1, 12),  # a raw random prefix table moves slowly
    "p-tuning": ({"virtual_tokens": 8}, 2e-2, 12),
    "bottleneck": ({"size": 16}, 1e-2, 12),
}
PROBE = "<|im_start|>user\nWhat colour is the plum?<|im_end|>\n<|im_start|>assistant\nThe plum is"


@pytest.mark.parametrize("name", sorted(CASES))
def test_trains_saves_and_reloads(name, tiny_model_dir, tiny_chat_data, tmp_path, make_config, capture_model):
    options, lr, steps = CASES[name]
    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs", **{
        "technique": {"name": name, **options}, "train.lr": lr, "train.max_steps": steps,
    })
    result = train(cfg)
    losses = [r["loss"] for r in RunFolder(result.run_dir).read_metrics() if r["type"] == "train"]
    assert len(losses) == steps
    assert sum(losses[-3:]) / 3 < 0.9 * losses[0], f"{name}: loss did not fall: {losses}"
    assert result.summary["status"] == "completed"
    assert 0 < result.summary["trainable_params"] <= result.summary["total_params"]

    adapter = result.run_dir / "adapter"
    meta = json.loads((adapter / "graft.json").read_text())
    assert meta["technique"] == name and meta["task"] == "causal-lm"

    trained = capture_model.model.eval()
    loaded = load_for_inference(result.run_dir)
    loaded.model.eval()
    ids = loaded.tokenizer(PROBE, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        want = trained(input_ids=ids).logits[:, -ids.shape[1]:]
        got = loaded.model(input_ids=ids).logits[:, -ids.shape[1]:]
    assert torch.allclose(want, got, atol=1e-5), f"{name}: reloaded logits differ by {(want - got).abs().max():.2e}"
    # and the reloaded model is the trained one, not the base
    from graft.models import load_model

    base, _ = load_model(str(tiny_model_dir), task="causal-lm")
    with torch.no_grad():
        plain = base.eval()(input_ids=ids).logits
    assert not torch.allclose(plain, got[:, -plain.shape[1]:], atol=1e-4), f"{name}: reloaded model equals the base"


# AdaLoRA's importance scores (moving averages over steps) live in peft's rank allocator, not in
# the checkpoint, so a resume during its budgeting phase reallocates from fresh scores.
RESUMABLE = sorted(set(CASES) - {"adalora"})


@pytest.mark.parametrize("name", RESUMABLE)
def test_interrupted_run_resumes_to_the_same_weights(name, tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    from safetensors.torch import load_file

    options, lr, _ = CASES[name]
    over = {"technique": {"name": name, **options}, "train.lr": lr, "train.max_steps": 6, "train.eval_every": 2}
    whole = train(make_config(tiny_model_dir, tiny_chat_data, tmp_path / "whole", **over))
    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "cut", **over)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=StopAfter(3))  # an eval ran in between: it must not disturb the resume
    resumed = train(cfg, resume_dir=tmp_path / "cut" / "run")
    assert resumed.summary["steps"] == 6

    def losses(run):
        return [r["loss"] for r in RunFolder(run).read_metrics() if r["type"] == "train"]

    assert losses(resumed.run_dir) == pytest.approx(losses(whole.run_dir), rel=1e-5)
    weights = get_technique(name).weights_file
    a, b = (load_file(r / "adapter" / weights) for r in (whole.run_dir, resumed.run_dir))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a), name
