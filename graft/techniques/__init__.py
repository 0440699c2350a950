"""Fine-tuning techniques: each one a small module exposing a `Technique`, found through the
`graft.techniques` entry-point group (graft's own and third parties' alike)."""

from graft.techniques.peft_common import count_parameters
from graft.techniques.registry import available, broken, get_technique, register
from graft.techniques.technique import ApplyContext, MemoryProfile, Requirement, Settings, Technique

__all__ = [
    "ApplyContext", "MemoryProfile", "Requirement", "Settings", "Technique",
    "available", "broken", "count_parameters", "get_technique", "register",
]
