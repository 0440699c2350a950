"""Trainable-parameter counts without weights: the model is built on the meta device from its
config, the technique applied, and the parameters counted as peft's print_trainable_parameters does.
"""

from __future__ import annotations

from pathlib import Path

from graft.techniques.peft_common import count_parameters
from graft.techniques.registry import get_technique
from graft.techniques.saved import head_modules
from graft.techniques.technique import ApplyContext


def skeleton(folder: str | Path, kind: str = "causal-lm", num_labels: int = 2):
    """The model's architecture on the meta device: shapes only, no memory, nothing read but config.json."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(folder)
    cls = {"causal-lm": AutoModelForCausalLM, "classification": AutoModelForSequenceClassification,
           "seq2seq": AutoModelForSeq2SeqLM}[kind]
    if kind == "classification":
        config.num_labels = num_labels
    with torch.device("meta"):
        return cls.from_config(config)


def count_trainable(folder: str | Path, name: str, options: dict | None = None, kind: str = "causal-lm",
                    num_labels: int = 2, total_steps: int = 1000) -> dict:
    """{"trainable", "total", "percent"} for technique `name` with `options` on the model in `folder`.

    Quantised techniques count their base weights as peft does (each 4-bit weight is one parameter),
    so the numbers equal those of the same technique on the full-precision base.
    """
    model = apply_on_meta(skeleton(folder, kind, num_labels), name, options, kind, total_steps)
    trainable, total = count_parameters(model)
    return {"technique": name, "trainable": trainable, "total": total, "percent": 100 * trainable / total}


def apply_on_meta(model, name: str, options: dict | None = None, kind: str = "causal-lm", total_steps: int = 1000):
    """Technique `name` applied to a `skeleton` model; what it adds stays on the meta device too."""
    import torch

    technique = get_technique(name)
    head = head_modules(model) if kind == "classification" else ()
    with torch.device("meta"):
        return technique.apply(model, technique.parse(options or {}), ApplyContext(kind=kind, total_steps=total_steps, head=head))
