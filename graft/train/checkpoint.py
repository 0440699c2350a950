"""Checkpoints: the adapter in PEFT format plus optimizer, scheduler and RNG state.

Written into a temporary folder and renamed, so a process killed mid-write leaves no checkpoint
that looks complete.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from graft.errors import RunError


def save_checkpoint(path: Path, model, optimizer, scheduler, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / "adapter")
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        },
        tmp / "trainer_state.pt",
    )
    (tmp / "state.json").write_text(json.dumps(state, indent=2))  # written last: marks completeness
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict[str, Any]:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = path / "adapter" / "adapter_model.safetensors"
    if not weights.is_file():
        raise RunError(f"checkpoint {path} has no adapter weights")
    set_peft_model_state_dict(model, load_file(weights))
    # weights_only: the file holds tensors and plain containers, nothing to execute
    blob = torch.load(path / "trainer_state.pt", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(_as_tuple(blob["python_rng"]))
    return json.loads((path / "state.json").read_text())


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
