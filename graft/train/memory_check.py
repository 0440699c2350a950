"""Before training: estimate the run's memory from the real micro-batches and refuse a run that
cannot fit the device (unless memory.check is off). During training: measure the peak."""

from __future__ import annotations

from graft.config import RunConfig
from graft.errors import DoesNotFitError


def estimate_memory(cfg: RunConfig, model_folder, technique, options, task: str, items, packed: bool,
                    processes_here: int = 1):
    """The run's Estimate; raises DoesNotFitError when it cannot fit and memory.check is on.

    `processes_here`: the run's processes on this machine. On a CPU they share its memory, so each
    is held to its share; on GPUs each has its own device."""
    from graft.memory.devices import DeviceSpec, device_for, this_machine
    from graft.memory.result import fmt_bytes
    from graft.memory.run import estimate_run
    from graft.memory.tokens import largest_micro_batch

    device = device_for(cfg.memory.device, cfg.memory.vram) if (cfg.memory.device or cfg.memory.vram) else this_machine()
    if device.kind == "cpu" and processes_here > 1:
        device = DeviceSpec(f"{device.name}, 1/{processes_here} of it", device.total_bytes // processes_here, "cpu")
    sizes = largest_micro_batch(items, cfg.train.batch_size, cfg.data.max_length, cfg.data.packing, packed, cfg.train.seed)
    est = estimate_run(cfg, model_folder, technique, options, task, device, sizes.tokens, sizes.targets,
                       data_tokens=sizes.data_tokens)
    if not est.fits and cfg.memory.check:
        tries = "; ".join(f"{a.label} ({fmt_bytes(a.total_bytes)}: {a.as_set_flags()})" for a in est.advice[:3])
        raise DoesNotFitError(
            f"this run needs about {fmt_bytes(est.total_bytes)} and {device.describe()} has {fmt_bytes(device.total_bytes)} "
            f"(largest micro-batch: {sizes.tokens} positions); `graft estimate` shows the breakdown",
            hint=(f"try: {tries}; " if tries else "") + "or pass --force (memory.check=false) to train anyway")
    return est
