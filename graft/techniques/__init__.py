"""Fine-tuning techniques behind one small registry: name -> Technique."""

from graft.techniques.registry import Technique, available, get_technique, register

__all__ = ["Technique", "available", "get_technique", "register"]
