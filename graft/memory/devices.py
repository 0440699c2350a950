"""Devices a run may be estimated for: presets by name, sizes like "24GiB", and this machine."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from graft.errors import ConfigError

GiB = 1024**3
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": GiB, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    total_bytes: int  # memory the run may use
    kind: Literal["cpu", "cuda"] = "cuda"

    def describe(self) -> str:
        return f"{self.name} ({self.total_bytes / GiB:.1f} GiB, {self.kind})"


# Marketed sizes (GPU "GB" is GiB on these boards); what a process can allocate is a little less,
# which the estimate's CUDA-context term accounts for.
PRESETS = {
    "h100": DeviceSpec("h100", 80 * GiB),
    "h200": DeviceSpec("h200", 141 * GiB),
    "a100-40": DeviceSpec("a100-40", 40 * GiB),
    "a100-80": DeviceSpec("a100-80", 80 * GiB),
    "l40s": DeviceSpec("l40s", 48 * GiB),
    "a10g": DeviceSpec("a10g", 24 * GiB),
    "l4": DeviceSpec("l4", 24 * GiB),
    "t4": DeviceSpec("t4", 16 * GiB),
    "v100": DeviceSpec("v100", 16 * GiB),
    "rtx4090": DeviceSpec("rtx4090", 24 * GiB),
    "rtx3090": DeviceSpec("rtx3090", 24 * GiB),
    "rtx4080": DeviceSpec("rtx4080", 16 * GiB),
    "rtx3060": DeviceSpec("rtx3060", 12 * GiB),
}
ALIASES = {"a100": "a100-80", "4090": "rtx4090", "3090": "rtx3090", "4080": "rtx4080", "3060": "rtx3060"}


def parse_size(text: str | int) -> int:
    """Bytes in "24GiB", "16GB", "512 MiB", "1.5T" (decimal units for kB/MB/GB, binary for KiB/MiB/GiB)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"memory size {text!r}: expected a number and a unit, e.g. 24GiB or 16GB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def preset(name: str) -> DeviceSpec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in PRESETS:
        raise ConfigError(f"unknown GPU {name!r}", hint="one of: " + ", ".join(PRESETS) + "; or give the size, e.g. --vram 24GiB")
    return PRESETS[key]


def device_for(gpu: str | None = None, vram: str | int | None = None) -> DeviceSpec:
    """A named preset, a bare size (a CUDA device of that size), the preset resized, or this machine."""
    if gpu and vram:
        return DeviceSpec(preset(gpu).name, parse_size(vram), "cuda")
    if gpu:
        return preset(gpu)
    if vram:
        return DeviceSpec(f"{vram} GPU", parse_size(vram), "cuda")
    return this_machine()


def this_machine() -> DeviceSpec:
    """The device a run here would train on.

    CUDA: the GPU's total memory (mem_get_info's total): the estimate already counts the context,
    and other processes' use changes from minute to minute. CPU: MemAvailable from /proc/meminfo
    plus what this process already holds (its RSS): what the run can have without swapping or the
    OOM killer, since the page cache counted in MemAvailable is given up on demand while other
    processes' memory is not. MemTotal would promise memory other programs hold.
    """
    import torch

    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return DeviceSpec(torch.cuda.get_device_name(), int(total), "cuda")
    return DeviceSpec("this CPU", _meminfo("MemAvailable") + _self_rss(), "cpu")


def _meminfo(key: str) -> int:
    from graft.memory.measure import proc_bytes

    found = proc_bytes("/proc/meminfo", key)
    if found is not None:
        return found
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _self_rss() -> int:
    from graft.memory.measure import status_bytes

    return status_bytes("VmRSS") or 0
