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
