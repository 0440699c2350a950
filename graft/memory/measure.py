"""Peak memory of one window of a run (the training loop), in bytes.

CUDA: the caching allocator's max_memory_allocated / max_memory_reserved, reset at the start; the
reported peak adds what the device held outside the allocator when the window opened (the CUDA
context and other processes), so it compares with the estimate's total.

CPU: the process's peak resident set. On Linux, writing 5 to /proc/self/clear_refs resets the
kernel's high-water mark (VmHWM) to the current RSS, and VmHWM read at the end is the exact peak,
kernel-tracked, with nothing to sample. Where that is refused, the peak is the highest VmRSS the
sampler saw (may miss short spikes). Before the window opens, glibc's malloc is asked to hand back the
free memory it keeps resident (malloc_trim): after a model was loaded and dropped, a gigabyte or more
can sit there, and a window whose tensors reuse it would show no rise at all. Either way the figure is the whole process: Python, torch, the
tokenizer and the data included, which the estimate's "context" term stands for.

The average (what the window held most of the time) always comes from a thread sampling every
50 ms: VmRSS on CPU, the allocator's reserved bytes plus what was outside it on CUDA.
"""

from __future__ import annotations

import threading


def proc_bytes(path: str, key: str) -> int | None:
    """A "Key:  N kB" field of a /proc file (status, meminfo) in bytes; None off Linux or when absent."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def status_bytes(key: str) -> int | None:
    """A size field (VmRSS, VmHWM, ...) of /proc/self/status in bytes."""
    return proc_bytes("/proc/self/status", key)


def _trim_heap() -> None:
    """Return glibc malloc's free, still-resident pages to the kernel (a no-op off glibc)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """`with PeakMemory() as m: train()` then `m.peak_bytes`, `m.to_dict()`.

    `device`: "cuda"/"cpu"/torch.device; default: cuda when available.
    """

    def __init__(self, device=None, interval_s: float = 0.05):
        import torch

        self.device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.interval_s = interval_s
        self.method = ""
        self.start_bytes = self.peak_bytes = 0
        self.extra: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._sampled = self._sum = self._count = 0

    def __enter__(self) -> "PeakMemory":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            free, total = torch.cuda.mem_get_info()
            reserved = torch.cuda.memory_reserved()
            self.extra["outside_allocator"] = (total - free) - reserved  # context + other processes
            self.start_bytes = total - free
            self.method = "cuda max_memory_reserved + memory outside the allocator at start"
        else:
            _trim_heap()
            self.start_bytes = status_bytes("VmRSS") or 0
            self.method = "VmHWM after clear_refs=5" if _reset_hwm() and status_bytes("VmHWM") is not None else \
                f"VmRSS sampled every {self.interval_s * 1000:.0f} ms"
        self._sampled, self._sum, self._count = self.start_bytes, 0, 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _now(self) -> int:
        if self.device.startswith("cuda"):
            import torch

            return torch.cuda.memory_reserved() + self.extra["outside_allocator"]
        return status_bytes("VmRSS") or 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            now = self._now()
            self._sampled = max(self._sampled, now)
            self._sum += now
            self._count += 1

    @property
    def avg_bytes(self) -> int:
        return int(self._sum / self._count) if self._count else self.peak_bytes

    def stop(self) -> int:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
            self.extra["max_allocated"] = torch.cuda.max_memory_allocated()
            self.extra["max_reserved"] = torch.cuda.max_memory_reserved()
            self.peak_bytes = self.extra["max_reserved"] + self.extra["outside_allocator"]
        elif self.method.startswith("VmHWM"):
            self.peak_bytes = max(status_bytes("VmHWM") or 0, self.start_bytes)
        else:
            self.peak_bytes = max(self._sampled, status_bytes("VmRSS") or 0)
        return self.peak_bytes

    def to_dict(self) -> dict:
        """For summary.json: the peak, what the process held when the window opened, and how it was measured."""
        return {"peak_bytes": self.peak_bytes, "avg_bytes": self.avg_bytes, "start_bytes": self.start_bytes, "device": self.device,
                "method": self.method, **self.extra}
