"""PeakMemory sees what is allocated inside its window, and not what came before."""

from __future__ import annotations

import torch

from graft.memory.measure import PeakMemory, status_bytes

MiB = 2**20


def _allocate_and_free(mib: int) -> None:
    x = torch.ones(mib * MiB // 4)  # ones: the pages are touched, so they are resident
    del x


def test_peak_includes_a_tensor_freed_inside_the_window():
    with PeakMemory("cpu") as m:
        _allocate_and_free(400)
    assert m.peak_bytes - m.start_bytes >= 380 * MiB
    assert m.to_dict()["method"]


def test_window_starts_fresh():
    _allocate_and_free(400)  # a peak before the window must not count
    with PeakMemory("cpu") as m:
        _allocate_and_free(40)
    assert m.peak_bytes - m.start_bytes < 200 * MiB


def test_sampling_fallback(monkeypatch):
    import graft.memory.measure as measure

    monkeypatch.setattr(measure, "_reset_hwm", lambda: False)  # as where clear_refs is refused
    with PeakMemory("cpu", interval_s=0.01) as m:
        x = torch.ones(300 * MiB // 4)
        import time

        time.sleep(0.3)  # the sampler must get a turn even on a busy machine
        del x
    assert "sampled" in m.method
    assert m.peak_bytes - m.start_bytes >= 250 * MiB


def test_status_bytes_reads_rss():
    assert status_bytes("VmRSS") > 50 * MiB
