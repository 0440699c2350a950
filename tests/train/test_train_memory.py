"""The memory check around a run: the estimate comes before the weights load and refuses a run that
cannot fit (unless forced); the measured peak lands next to it in summary.json."""

from __future__ import annotations

import pytest

from graft.errors import DoesNotFitError
from graft.train.recipe import train


def test_a_run_that_cannot_fit_is_refused_before_anything_is_written(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs", **{"memory.vram": "1MiB"})
    with pytest.raises(DoesNotFitError) as info:
        train(cfg)
    assert "has 1.0 MiB" in str(info.value) and "--force" in info.value.hint
    assert not (tmp_path / "runs").exists()


def test_forced_run_trains_and_records_estimate_and_peak(tiny_model_dir, tiny_chat_data, tmp_path, make_config):
    cfg = make_config(tiny_model_dir, tiny_chat_data, tmp_path / "runs", **{"memory.vram": "1MiB", "memory.check": False,
                                                                            "train.max_steps": 2})
    mem = train(cfg).summary["memory"]
    assert mem["estimate"]["fits"] is False and mem["estimate"]["device"]["total_bytes"] == 2**20
    assert mem["measured_peak_bytes"] > 50 * 2**20  # a Python process with torch loaded
    assert mem["estimated_bytes"] == mem["estimate"]["total_bytes"] > 0
    assert mem["measured"]["method"]
    names = [t["name"] for t in mem["estimate"]["terms"]]
    assert any("optimizer" in n for n in names) and any("logits" in n for n in names)
