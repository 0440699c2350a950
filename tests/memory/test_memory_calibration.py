"""The estimate against `graft train`'s measured peak on the real bundled SmolLM2 (slow).

Three steps of LoRA at batch 4 x 256 on Alpaca rows; the window is the training loop, measured with
PeakMemory exactly as the recipe does, the estimate given the largest real micro-batch.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ALPACA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "alpaca_5000" / "alpaca_5000.json"


def test_lora_peak_within_20_percent(tmp_path, monkeypatch):
    if not ALPACA.is_file():
        pytest.skip(f"{ALPACA} is absent")
    import graft.train.step as step
    from graft.config import RunConfig
    from graft.memory import PeakMemory, estimate_run, this_machine
    from graft.models import resolve
    from graft.models.load import ensure_folder
    from graft.progress import NullProgress
    from graft.techniques import get_technique
    from graft.train.recipe import train

    sizes = {"tokens": 0, "targets": 0}
    real_loss = step.loss_sum

    def loss_sum(model, batch):  # the micro-batches the run really computes
        sizes["tokens"] = max(sizes["tokens"], batch.input_ids.numel())
        sizes["targets"] = max(sizes["targets"], len(batch.targets))
        return real_loss(model, batch)

    monkeypatch.setattr(step, "loss_sum", loss_sum)

    class Window(NullProgress):
        def start(self, task, total=None, completed=0):
            if task == "train":
                self.peak = PeakMemory("cpu")
                self.peak.start()

        def finish(self, task):
            if task == "train":
                self.peak.stop()

    cfg = RunConfig.from_dict({
        "data": {"path": str(ALPACA), "skip_bad_rows": True, "limit": 200, "max_length": 256, "eval_size": 0},
        "technique": {"name": "lora"},
        "train": {"max_steps": 3, "batch_size": 4, "threads": 2, "warmup_steps": 0},
        "output_dir": str(tmp_path), "run_name": "calibration",
    })
    window = Window()
    train(cfg, window)
    measured = window.peak.peak_bytes
    folder = ensure_folder(resolve(cfg.model.name))
    e = estimate_run(cfg, folder, get_technique("lora"), cfg.technique.options, "causal-lm", this_machine(),
                     sizes["tokens"], sizes["targets"], advise=False)
    assert abs(measured - e.total_bytes) / measured < 0.20, (measured, e.render())
