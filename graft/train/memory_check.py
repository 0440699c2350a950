"""Before training: estimate the run's memory from the real micro-batches and refuse a run that
cannot fit the device (unless memory.check is off). During training: measure the peak."""

from __future__ import annotations

from graft.config import RunConfig
from graft.data.batching import group
from graft.errors import DoesNotFitError


def largest_micro_batch(items, cfg: RunConfig, packed: bool) -> tuple[int, int]:
    """(positions, targets) of the epoch's largest micro-batch: packed rows hold the examples' tokens
    end to end; padded rows are as wide as their longest example."""
    lengths = [len(t.input_ids) for t in items]
    groups = group(len(items), lengths, cfg.train.batch_size, cfg.data.max_length, cfg.data.packing, cfg.train.seed, 0)
    positions = max((sum(lengths[i] for i in g) if packed else len(g) * max(lengths[i] for i in g)) for g in groups)
    targets = max(sum(max(items[i].targets, 1) for i in g) for g in groups)
    return positions, targets


def estimate_memory(cfg: RunConfig, model_folder, technique, options, task: str, items, packed: bool):
    """The run's Estimate; raises DoesNotFitError when it cannot fit and memory.check is on."""
    from graft.memory.devices import device_for, this_machine
    from graft.memory.result import fmt_bytes
    from graft.memory.run import estimate_run

    device = device_for(cfg.memory.device, cfg.memory.vram) if (cfg.memory.device or cfg.memory.vram) else this_machine()
    positions, targets = largest_micro_batch(items, cfg, packed)
    est = estimate_run(cfg, model_folder, technique, options, task, device, positions, targets,
                       data_tokens=sum(len(t.input_ids) for t in items))
    if not est.fits and cfg.memory.check:
        tries = "; ".join(f"{a.label} ({fmt_bytes(a.total_bytes)}: {a.as_set_flags()})" for a in est.advice[:3])
        raise DoesNotFitError(
            f"this run needs about {fmt_bytes(est.total_bytes)} and {device.describe()} has {fmt_bytes(device.total_bytes)} "
            f"(largest micro-batch: {positions} positions); `graft estimate` shows the breakdown",
            hint=(f"try: {tries}; " if tries else "") + "or pass --force (memory.check=false) to train anyway")
    return est
