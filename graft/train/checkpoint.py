"""Checkpoints: the trained weights (as the technique saves them) plus optimizer, scheduler and RNG state.

Written into a temporary folder and renamed, so a process killed mid-write leaves no checkpoint
that looks complete. With several processes every rank takes part (sharded weights and optimizer
state are gathered, or, for DeepSpeed, each rank writes its own shard) and rank 0 writes the rest.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any, Callable

import torch

from graft.errors import RunError
from graft.train.parallel import Single


def save_checkpoint(path: Path, save_weights: Callable[[Path], None], optimizer, scheduler, state: dict[str, Any],
                    scaler=None, model=None, strategy: Single | None = None) -> None:
    """`save_weights(folder)` writes the trained weights (the technique's own format) into folder."""
    strategy = strategy or Single()
    main = strategy.world.main
    tmp = path.with_name(path.name + ".tmp")
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    strategy.barrier()
    with strategy.full_weights(model) as saves:
        if saves:
            save_weights(tmp / "adapter")
    optimizer_state = strategy.optimizer_state(model, optimizer, tmp)
    # each rank's own random streams (dropout masks differ by rank), so a resumed run draws what it would have
    rngs = strategy.gather({"torch": torch.get_rng_state(), "python": random.getstate()})
    if main:
        torch.save(
            {
                "optimizer": optimizer_state,
                "scheduler": scheduler.state_dict(),
                "torch_rng": rngs[0]["torch"],
                "python_rng": rngs[0]["python"],
                "rank_rng": rngs[1:],
                "scaler": scaler.state_dict() if scaler is not None else {},  # fp16 loss scale
            },
            tmp / "trainer_state.pt",
        )
    strategy.barrier()  # every rank's shard is on disk before the checkpoint is marked complete
    if main:
        (tmp / "state.json").write_text(json.dumps(state, indent=2))  # written last: marks completeness
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    strategy.barrier()


def restore_weights(path: Path, restore: Callable[[Path], None], weights_file: str) -> None:
    """`restore(folder)` loads the weights that `save_weights` wrote back into the (unwrapped) model."""
    if not (path / "adapter" / weights_file).is_file():
        raise RunError(f"checkpoint {path} has no trained weights ({weights_file})")
    restore(path / "adapter")


def load_trainer_state(path: Path, optimizer, scheduler, scaler=None, model=None,
                       strategy: Single | None = None) -> dict[str, Any]:
    """Optimizer, schedule, loss scale and RNG state of a checkpoint; returns its state.json."""
    strategy = strategy or Single()
    # weights_only: the file holds tensors and plain containers, nothing to execute
    blob = torch.load(path / "trainer_state.pt", weights_only=True)
    strategy.load_optimizer_state(model, optimizer, blob["optimizer"], path)
    scheduler.load_state_dict(blob["scheduler"])
    if scaler is not None and blob.get("scaler"):
        scaler.load_state_dict(blob["scaler"])
    rank = strategy.world.rank
    rng = {"torch": blob["torch_rng"], "python": blob["python_rng"]}
    if rank > 0 and len(blob.get("rank_rng", [])) >= rank:  # a resume over fewer ranks reuses rank 0's
        rng = blob["rank_rng"][rank - 1]
    torch.set_rng_state(rng["torch"])
    random.setstate(_as_tuple(rng["python"]))
    return json.loads((path / "state.json").read_text())


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x
