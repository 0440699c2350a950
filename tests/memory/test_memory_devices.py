"""Device sizes and presets."""

from __future__ import annotations

import pytest

from graft.errors import ConfigError
from graft.memory.devices import GiB, device_for, parse_size, preset, this_machine


@pytest.mark.parametrize("text, expected", [
    ("24GiB", 24 * GiB), ("16GB", 16 * 10**9), ("512 MiB", 512 * 2**20), ("1.5GiB", int(1.5 * GiB)),
    ("80gib", 80 * GiB), ("2T", 2 * 10**12), ("1000", 1000), (4096, 4096),
])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["GiB", "24 parsecs", "-1GB", ""])
def test_parse_size_refuses_nonsense(bad):
    with pytest.raises(ConfigError):
        parse_size(bad)


def test_presets_and_aliases():
    assert preset("h100").total_bytes == 80 * GiB
    assert preset("RTX4090").total_bytes == 24 * GiB == preset("4090").total_bytes
    assert preset("a100-40").total_bytes == 40 * GiB
    with pytest.raises(ConfigError) as e:
        preset("tpu-v9")
    assert "rtx4090" in e.value.hint


def test_device_for_combines_gpu_and_vram():
    assert device_for("a100-80").name == "a100-80"
    resized = device_for("rtx4090", "20GiB")
    assert resized.total_bytes == 20 * GiB and resized.kind == "cuda"
    assert device_for(None, "12GB").total_bytes == 12 * 10**9


def test_this_machine_is_what_can_be_had_not_the_total():
    d = this_machine()
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    assert d.kind in ("cpu", "cuda")
    if d.kind == "cpu":
        assert 0 < d.total_bytes <= info["MemTotal"]
