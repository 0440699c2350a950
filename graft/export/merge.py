"""Fold a trained adapter into its base and save a model plain transformers loads."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from graft.errors import ConfigError
from graft.progress import NullProgress, Progress

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
QUANTISED_BASE = {"qlora", "qdora"}


@dataclass
class Merged:
    model: object  # a plain transformers model, adapter folded in
    tokenizer: object
    base: str
    technique: str | None
    task: str
    source: Path  # the run or adapter folder exported
    notes: list[str]


def trained_model(target: str | Path, progress: Progress | None = None):
    """(Loaded, notes): the trained model as it serves (adapter attached, unmerged), the reference.

    A QLoRA/QDoRA adapter is attached to the full-precision base instead of the 4-bit one: merged
    weights cannot stay 4-bit without rounding the update away, so the export is that model.
    """
    from graft.inference import Loaded, load_for_inference
    from graft.inference.load import _base_of
    from graft.techniques.saved import read_meta
    from graft.train.run_folder import RunFolder

    path = Path(target)
    is_run = (path / "config.yaml").is_file()
    saved = RunFolder(path).adapter if is_run else path
    meta = read_meta(saved) if (saved / "adapter_config.json").is_file() or (saved / "graft.json").is_file() else {}
    if meta.get("technique") not in QUANTISED_BASE:
        return load_for_inference(path, progress), []
    from peft import PeftModel

    from graft.models import load_model

    base = RunFolder(path).load_config().model.name if is_run else _base_of(saved, meta)
    task = meta.get("task", "causal-lm")
    model, tokenizer = load_model(base, "float32", task=task, labels=meta.get("labels"), progress=progress)
    model = PeftModel.from_pretrained(model, saved)  # the PEFT folder is a plain LoRA/DoRA adapter
    note = (f"{meta['technique']} trained against a 4-bit base; its adapter is merged into the float32 base "
            "(the usual way to deploy QLoRA), so outputs can differ slightly from the 4-bit model's")
    loaded = Loaded(model, tokenizer, True, base, path if is_run else None, task, meta["technique"], meta.get("labels"))
    return loaded, [note]


def merge(loaded) -> tuple[object, list[str]]:
    """The plain model of a loaded run: the adapter folded in, or a clear refusal."""
    if not loaded.has_adapter:
        return loaded.model, ["no adapter: the model is exported as it is"]
    if loaded.technique == "full":
        return loaded.model, ["full fine-tune: the trained weights are the model"]
    if not loaded.mergeable or not hasattr(loaded.model, "merge_and_unload"):
        raise ConfigError(
            f"technique '{loaded.technique}' cannot be merged into the base: "
            + _WHY_NOT.get(loaded.technique, "it adds modules or inputs that have no weight in the base to fold into"),
            hint="serve it with its adapter attached (graft serve / graft chat), or train a mergeable technique "
                 "such as lora, dora or ia3 for a merged export",
        )
    return loaded.model.merge_and_unload(), []


_WHY_NOT = {
    "prompt-tuning": "its learned virtual tokens are extra input; there is no weight to fold them into",
    "prefix-tuning": "its learned key/value prefixes are extra attention input; there is no weight to fold them into",
    "p-tuning": "its prompt encoder produces extra input tokens; there is no weight to fold them into",
    "bottleneck": "its bottleneck MLPs are new non-linear layers; no base weight can absorb them",
}


def save_model(model, tokenizer, out: Path, dtype: str = "float32", progress: Progress | None = None) -> list[Path]:
    """Safetensors + config + tokenizer in `out`; written beside and renamed, so a crash leaves no half folder."""
    progress = progress or NullProgress()
    if dtype not in DTYPES:
        raise ConfigError(f"unknown --dtype '{dtype}'; expected one of {', '.join(DTYPES)}")
    if getattr(model, "hf_quantizer", None) is not None:  # a GGUF-loaded base refuses to save otherwise
        model.hf_quantizer.remove_quantization_config(model)
    model = model.to(DTYPES[dtype]) if dtype != "float32" else model
    progress.log(f"saving the merged model to {out}")
    return write_folder(model, tokenizer, out)


def write_folder(model, tokenizer, out: Path) -> list[Path]:
    """save_pretrained of model and tokenizer into a folder beside `out`, renamed to `out` when whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return sorted(p for p in out.iterdir() if p.is_file())
