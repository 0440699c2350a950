"""train() end to end on the tiny model: the loss falls, the run folder says what happened, the adapter reloads."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from graft.config import RunConfig
from graft.errors import RunError
from graft.train.recipe import train
from graft.train.run_folder import RunFolder

STEPS = 30
PROBE = "<|im_start|>user\nWhat colour is the plum?<|im_end|>\n<|im_start|>assistant\nThe plum is"


def _train_rows(run_dir):
    return [r for r in RunFolder(run_dir).read_metrics() if r["type"] == "train"]


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory, helpers):
    """One 30-step run shared by the tests below, with the model object it trained."""
    tmp = tmp_path_factory.mktemp("recipe")
    data = tmp / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    cfg = helpers.tiny_config(tiny_model_dir, data, tmp / "runs",
                              **{"train.max_steps": STEPS, "checkpoint.every": 10, "checkpoint.keep_last": 5})
    with pytest.MonkeyPatch.context() as mp:
        capture = helpers.install_model_capture(mp)
        result = train(cfg)
    assert len(capture.models) == 1
    return cfg, result, capture.model


def test_loss_falls(run):
    _, result, _ = run
    losses = [r["loss"] for r in _train_rows(result.run_dir)]
    assert len(losses) == STEPS
    last3 = sum(losses[-3:]) / 3
    assert last3 < 0.6 * losses[0], f"loss did not fall enough: first {losses[0]:.3f}, last three {last3:.3f}"
    assert result.summary["first_loss"] == pytest.approx(losses[0])
    assert result.summary["final_loss"] == pytest.approx(losses[-1])
    assert result.summary["eval_loss"] < result.summary["first_loss"] * 0.6


def test_run_folder_contents(run):
    cfg, result, _ = run
    d = result.run_dir
    assert d == RunFolder(cfg.output_dir).path / "run"
    assert RunConfig.from_dict(yaml.safe_load((d / "config.yaml").read_text())) == cfg

    rows = RunFolder(d).read_metrics()
    train_rows = [r for r in rows if r["type"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(1, STEPS + 1))
    for r in train_rows:
        assert {"step", "loss", "lr", "grad_norm", "tokens_per_s"} <= r.keys()
        assert r["lr"] == pytest.approx(cfg.train.lr)  # constant schedule, no warmup
        assert r["grad_norm"] > 0 and r["tokens_per_s"] > 0 and r["loss"] > 0
    assert sum(1 for r in rows if r["type"] == "eval") == 1  # the final evaluation

    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["steps"] == summary["total_steps"] == STEPS
    assert summary["trainable_params"] > 0
    assert 0 < summary["trainable_percent"] < 100
    assert summary["trainable_percent"] == pytest.approx(
        100 * summary["trainable_params"] / summary["total_params"], abs=1e-3)
    assert summary["data"]["train_examples"] == 56 and summary["data"]["eval_examples"] == 8
    assert summary["batches_per_epoch"] == 7
    assert summary["threads"] == cfg.train.threads
    assert summary["tokens"] == train_rows[-1]["tokens"]
    assert (d / "adapter" / "adapter_model.safetensors").is_file()
    assert (d / "adapter" / "adapter_config.json").is_file()
    assert "done: adapter in" in (d / "train.log").read_text()
    # checkpoints every 10 steps, except at the last step (the adapter is the final state)
    assert [s for s, _ in RunFolder(d).checkpoints()] == [10, 20]


def _logits(model, tokenizer_dir, text=PROBE):
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tokenizer_dir)(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_saved_adapter_reproduces_the_trained_model(run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, result, trained_model = run
    in_run = _logits(trained_model, tiny_model_dir)
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), result.run_dir / "adapter")
    again = _logits(reloaded, tiny_model_dir)
    assert torch.allclose(again, in_run, rtol=0, atol=1e-6), (again - in_run).abs().max()

    base = _logits(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tiny_model_dir)
    assert (base - in_run).abs().max() > 0.1, "the adapter must change the model"
    step20 = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                       result.run_dir / "checkpoints" / "step-000020" / "adapter")
    assert (_logits(step20, tiny_model_dir) - in_run).abs().max() > 1e-3, "the last 10 steps must be in the adapter"


def test_run_folder_is_never_reused(run):
    cfg, _, _ = run
    with pytest.raises(RunError, match="exists already"):
        train(cfg)


def test_failed_run_records_error_and_metrics(tiny_model_dir, tiny_chat_data, tmp_path, make_config, monkeypatch):
    import graft.train.step as step

    real = step.loss_sum
    calls = {"n": 0}

    def flaky(model, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated failure in step 3")
        return real(model, batch)

    monkeypatch.setattr(step, "loss_sum", flaky)
    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs", **{"train.max_steps": 6})
    with pytest.raises(RuntimeError, match="simulated failure"):
        train(cfg)
    d = tmp_path / "runs" / "run"
    summary = json.loads((d / "summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["error"] == "RuntimeError: simulated failure in step 3"
    assert summary["steps"] == 2
    assert [r["step"] for r in _train_rows(d)] == [1, 2]
    assert summary["final_loss"] == pytest.approx(_train_rows(d)[-1]["loss"])
    assert "failed at step 2" in (d / "train.log").read_text()
    assert not (d / "adapter").exists()


def test_interrupted_run_saves_a_checkpoint_and_resumes(tiny_model_dir, tiny_chat_data, tmp_path, make_config,
                                                        monkeypatch):
    import graft.train.step as step

    real = step.loss_sum
    calls = {"n": 0}

    def interrupt(model, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(model, batch)

    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs", **{"train.max_steps": 6})
    with monkeypatch.context() as mp:
        mp.setattr(step, "loss_sum", interrupt)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    d = tmp_path / "runs" / "run"
    assert json.loads((d / "summary.json").read_text())["status"] == "interrupted"
    assert RunFolder(d).latest_checkpoint()[0] == 3
    result = train(cfg, resume_dir=d)
    assert (result.summary["status"], result.summary["steps"]) == ("completed", 6)
    assert [r["step"] for r in _train_rows(d)] == [1, 2, 3, 4, 5, 6]


def test_resume_without_checkpoint_is_refused(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs")
    folder = RunFolder.create(cfg)
    with pytest.raises(RunError, match="no complete checkpoint"):
        train(cfg, resume_dir=folder.path)
    with pytest.raises(RunError, match="not a graft run folder"):
        train(cfg, resume_dir=tmp_path / "nowhere")


def test_every_epoch_is_walked_by_its_own_batch_count_with_packing():
    """With packing, each epoch's shuffle packs into a different number of micro-batches."""
    from graft.data.batching import group
    from graft.data.tokenize import Tokenized
    from graft.train.recipe import _micro_batches

    lengths = [5, 9, 3, 12, 7, 4, 11, 6, 8, 2, 10, 5, 9, 3]
    items = [Tokenized(list(range(n)), list(range(n))) for n in lengths]
    cfg = RunConfig.from_dict({"data": {"path": "x", "packing": True, "max_length": 8}, "train": {"batch_size": 2, "seed": 3}})
    counts = [len(group(len(items), lengths, 2, 8, True, 3, e)) for e in range(6)]
    assert len(set(counts)) > 1, "the fixture must give epochs of different sizes"
    batch = _micro_batches(items, lengths, cfg)
    seen = [batch(i).tokens for i in range(sum(counts))]
    assert sum(seen) == 6 * sum(lengths)  # six whole epochs, nothing skipped or repeated


def test_on_eval_sees_each_evaluation_and_stop_training_ends_the_run(tiny_model_dir, tmp_path, helpers):
    from graft.errors import StopTraining

    data = tmp_path / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    cfg = helpers.tiny_config(tiny_model_dir, data, tmp_path / "runs", **{"train.max_steps": 10, "train.eval_every": 2})
    seen = []

    def on_eval(step, total_steps, scores):
        assert total_steps == 10
        seen.append((step, scores["eval_loss"]))
        if step == 4:
            raise StopTraining("pruned by the test")

    with pytest.raises(StopTraining):
        train(cfg, on_eval=on_eval)
    assert [s for s, _ in seen] == [2, 4]  # in-training evaluations only (not the one before step 1)
    folder = RunFolder(tmp_path / "runs" / "run")
    summary = folder.read_summary()
    assert summary["status"] == "stopped" and summary["reason"] == "pruned by the test" and summary["steps"] == 4
    evals = [r for r in folder.read_metrics() if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2, 4] and evals[-1]["eval_loss"] == pytest.approx(seen[-1][1])
    assert "stopped at step 4: pruned by the test" in folder.log_file.read_text()
