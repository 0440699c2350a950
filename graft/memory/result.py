"""An estimate: named terms in bytes, how they add up to the peak, and whether that fits."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from graft.memory.devices import GiB, DeviceSpec

# static: held the whole run; forward-backward: at the peak of a micro-batch's backward;
# step: during the optimizer step; host: moved off the device (shown, not added)
Phase = Literal["static", "forward-backward", "step", "host"]


@dataclass(frozen=True)
class Term:
    name: str
    bytes: int
    phase: Phase
    note: str = ""


@dataclass
class Advice:
    """A change that would make the run fit, with the estimated total after it."""

    changes: dict[str, object]  # dotted config keys -> values (apply with --set)
    label: str
    cost: float  # relative slowdown / quality cost; lower is better
    total_bytes: int

    def as_set_flags(self) -> str:
        return " ".join(f"--set {k}={_yaml(v)}" for k, v in self.changes.items())


@dataclass
class Estimate:
    terms: list[Term]
    device: DeviceSpec
    assumptions: list[str] = field(default_factory=list)
    advice: list[Advice] = field(default_factory=list)

    def phase_bytes(self, phase: Phase) -> int:
        return sum(t.bytes for t in self.terms if t.phase == phase)

    @property
    def peak_phase(self) -> str:
        return "forward-backward" if self.phase_bytes("forward-backward") >= self.phase_bytes("step") else "step"

    @property
    def total_bytes(self) -> int:
        """Static terms plus the larger of the two transient phases (they never coexist)."""
        return self.phase_bytes("static") + max(self.phase_bytes("forward-backward"), self.phase_bytes("step"))

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.device.total_bytes

    @property
    def breakdown(self) -> "OrderedDict[str, int]":
        return OrderedDict((t.name, t.bytes) for t in self.terms)

    def to_dict(self) -> dict:
        """For summary.json and --json."""
        return {
            "total_bytes": self.total_bytes,
            "device": {"name": self.device.name, "kind": self.device.kind, "total_bytes": self.device.total_bytes},
            "fits": self.fits,
            "peak_phase": self.peak_phase,
            "terms": [{"name": t.name, "bytes": t.bytes, "phase": t.phase, "note": t.note} for t in self.terms],
            "assumptions": list(self.assumptions),
            "advice": [{"label": a.label, "changes": a.changes, "total_bytes": a.total_bytes, "cost": a.cost}
                       for a in self.advice],
        }

    def render(self) -> str:
        """Plain-text table (the CLI draws its own with Rich)."""
        width = max(len(t.name) for t in self.terms)
        lines = [f"memory estimate for {self.device.describe()}"]
        for t in self.terms:
            lines.append(f"  {t.name:<{width}}  {fmt_bytes(t.bytes):>10}  {t.phase:<16} {t.note}")
        lines.append(f"  {'total (peak: ' + self.peak_phase + ')':<{width}}  {fmt_bytes(self.total_bytes):>10}")
        lines.append(f"  fits: {'yes' if self.fits else 'no'} ({fmt_bytes(self.total_bytes)} of {fmt_bytes(self.device.total_bytes)})")
        for a in self.assumptions:
            lines.append(f"  assumes: {a}")
        for a in self.advice:
            lines.append(f"  try: {a.label} -> {fmt_bytes(a.total_bytes)}  ({a.as_set_flags()})")
        return "\n".join(lines)


def fmt_bytes(n: int) -> str:
    if abs(n) >= GiB:
        return f"{n / GiB:.2f} GiB"
    if abs(n) >= 1024**2:
        return f"{n / 1024**2:.1f} MiB"
    if abs(n) >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n} B"


def _yaml(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)
