"""Answer matching: exact match after normalisation, JSON-aware."""

from __future__ import annotations

import json
import re


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip())


def _as_json(text: str):
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def exact_match(prediction: str, reference: str) -> bool:
    """Equal after whitespace normalisation; JSON answers compare as parsed values (key order and spacing free)."""
    ref = _as_json(reference.strip())
    if ref is not None and isinstance(ref, (dict, list)):
        return _as_json(prediction.strip()) == ref
    return normalize(prediction) == normalize(reference)


def classification_scores(predictions: list[int], labels: list[int]) -> dict:
    """Accuracy and macro F1 in percent; F1 of the positive class (id 1) too when there are two classes."""
    classes = sorted(set(labels) | set(predictions))
    f1s = {c: _f1(predictions, labels, c) for c in classes}
    out = {
        "accuracy": 100.0 * sum(p == y for p, y in zip(predictions, labels)) / max(len(labels), 1),
        "f1_macro": 100.0 * sum(f1s.values()) / max(len(f1s), 1),
    }
    if len(set(labels)) <= 2 and 1 in f1s:
        out["f1"] = 100.0 * f1s[1]
    return out


def _f1(predictions: list[int], labels: list[int], c: int) -> float:
    tp = sum(p == c and y == c for p, y in zip(predictions, labels))
    predicted = sum(p == c for p in predictions)
    actual = sum(y == c for y in labels)
    return 2 * tp / (predicted + actual) if predicted + actual else 0.0
