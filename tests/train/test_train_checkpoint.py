"""Checkpoint rotation and what counts as a complete checkpoint."""

from __future__ import annotations

import json

import torch

from graft.train.checkpoint import load_trainer_state, restore_weights
from graft.train.recipe import train
from graft.train.run_folder import RunFolder


def test_rotation_keeps_the_last_complete_checkpoints(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs",
                      **{"train.max_steps": 9, "checkpoint.every": 2, "checkpoint.keep_last": 2})
    result = train(cfg)
    folder = RunFolder(result.run_dir)
    # saved at 2, 4, 6, 8; the two newest survive
    assert sorted(p.name for p in folder.checkpoints_dir.iterdir()) == ["step-000006", "step-000008"]
    for step, path in folder.checkpoints():
        assert json.loads((path / "state.json").read_text())["step"] == step
        assert (path / "adapter" / "adapter_model.safetensors").is_file()
        assert (path / "trainer_state.pt").is_file()
    assert folder.latest_checkpoint() == (8, folder.checkpoint_path(8))

    # leftovers of a killed save: a .tmp folder, and a step folder without state.json
    half = folder.checkpoints_dir / "step-000010.tmp"
    (half / "adapter").mkdir(parents=True)
    (half / "adapter" / "adapter_model.safetensors").write_bytes(b"")
    (folder.checkpoints_dir / "step-000012" / "adapter").mkdir(parents=True)
    (folder.checkpoints_dir / "notes").mkdir()
    assert [s for s, _ in folder.checkpoints()] == [6, 8]
    assert folder.latest_checkpoint()[0] == 8
    # even a .tmp folder that got as far as its state.json is not a checkpoint until renamed
    (half / "state.json").write_text(json.dumps({"step": 10}))
    assert folder.latest_checkpoint()[0] == 8

    # pruning with keep_last=1 leaves the newest complete one and does not touch the leftovers
    folder.prune_checkpoints(1)
    assert [s for s, _ in folder.checkpoints()] == [8]
    assert half.is_dir()


def test_checkpoint_restores_adapter_optimizer_and_rng(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    from graft.models import load_model
    from graft.techniques import ApplyContext, get_technique
    from graft.train.optim import build_optimizer, build_scheduler

    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs",
                      **{"train.max_steps": 5, "checkpoint.every": 4, "train.scheduler": "linear"})
    result = train(cfg)
    path = RunFolder(result.run_dir).checkpoint_path(4)

    model, _ = load_model(str(tiny_model_dir))
    lora = get_technique("lora")
    model = lora.apply(model, cfg.technique.options, ApplyContext())
    opt = build_optimizer(model, cfg.train)
    sched = build_scheduler(opt, cfg.train, 5)
    restore_weights(path, lambda p: lora.restore(model, p), lora.weights_file)
    state = load_trainer_state(path, opt, sched)
    assert state["step"] == 4 and state["tokens"] > 0
    assert sched.last_epoch == 4
    assert sched.get_last_lr()[0] == cfg.train.lr * (5 - 4) / 5
    assert all(s["step"].item() == 4 for s in opt.state.values())
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b), "trained adapter weights were loaded"
    # the RNG state saved with the checkpoint is the one in effect now
    blob = torch.load(path / "trainer_state.pt", weights_only=True)
    assert torch.equal(torch.get_rng_state(), blob["torch_rng"])
