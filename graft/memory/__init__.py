"""Memory: a run's peak estimated before anything loads, advice when it does not fit, the peak measured.

For the recipe (after data prep, before loading the model):

    from graft.memory import PeakMemory, device_for, estimate_run
    from graft.memory.tokens import largest_micro_batch

    sizes = largest_micro_batch(data.train.items, cfg.train.batch_size, cfg.data.max_length,
                                cfg.data.packing, packed, cfg.train.seed)
    device = device_for(cfg.memory.device, cfg.memory.vram)  # this machine when both are None
    est = estimate_run(cfg, folder, technique, options, task, device, sizes.tokens, sizes.targets,
                       data_tokens=sizes.data_tokens)
    if cfg.memory.check and not est.fits:
        raise DoesNotFitError(...)  # hint: est.advice[0].label and .as_set_flags()
    with PeakMemory() as peak:  # around the training loop
        ...
    summary["memory"] = {"estimate": est.to_dict(), "measured": peak.to_dict()}
"""

from graft.memory.devices import PRESETS, DeviceSpec, device_for, parse_size, preset, this_machine
from graft.memory.estimate import estimate
from graft.memory.measure import PeakMemory
from graft.memory.result import Advice, Estimate, Term, fmt_bytes
from graft.memory.run import estimate_run

__all__ = ["PRESETS", "Advice", "DeviceSpec", "Estimate", "PeakMemory", "Term", "device_for", "estimate",
           "estimate_run", "fmt_bytes", "parse_size", "preset", "this_machine"]
