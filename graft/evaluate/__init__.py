"""Evaluation: perplexity, exact match from greedy generation, base vs tuned."""

from graft.evaluate.evaluate import evaluate, score
from graft.evaluate.metrics import exact_match

__all__ = ["evaluate", "exact_match", "score"]
