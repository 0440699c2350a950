"""Checkpoints: the trained weights (as the technique saves them) plus optimizer, scheduler and RNG state.

Written into a temporary folder and renamed, so a process killed mid-write leaves no checkpoint
that looks complete.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from graft.errors import RunError


def save_checkpoint(path: Path, save_weights: Callable[[Path], None], optimizer, scheduler, state: dict[str, Any],
                    scaler=None) -> None:
    """`save_weights(folder)` writes the trained weights (the technique's own format) into folder."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(tmp / "adapter")
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "scaler": scaler.state_dict() if scaler is not None else {},  # fp16 loss scale
        },
        tmp / "trainer_state.pt",
    )
    (tmp / "state.json").write_text(json.dumps(state, indent=2))  # written last: marks completeness
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


def load_checkpoint(path: Path, restore: Callable[[Path], None], weights_file: str, optimizer, scheduler,
                    scaler=None) -> dict[str, Any]:
    """`restore(folder)` loads the weights that `save_weights` wrote back into the model."""
    if not (path / "adapter" / weights_file).is_file():
        raise RunError(f"checkpoint {path} has no trained weights ({weights_file})")
    restore(path / "adapter")
    # weights_only: the file holds tensors and plain containers, nothing to execute
    blob = torch.load(path / "trainer_state.pt", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    if scaler is not None and blob.get("scaler"):
        scaler.load_state_dict(blob["scaler"])
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(_as_tuple(blob["python_rng"]))
    return json.loads((path / "state.json").read_text())


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
