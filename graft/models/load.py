"""Load a resolved model and its tokenizer; dequantize GGUF weights once into graft's cache."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch

from graft.errors import ModelNotFoundError
from graft.models.resolve import MARKER, ModelSource, gguf_fingerprint, resolve
from graft.progress import NullProgress, Progress

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ENCODER_TYPES = {"bert", "roberta", "distilbert", "deberta", "deberta-v2", "electra", "xlm-roberta", "mpnet"}


def model_task(folder: Path) -> str:
    """"causal-lm" or "encoder", read from the model's config.json."""
    cfg = json.loads((folder / "config.json").read_text())
    return "encoder" if cfg.get("model_type") in ENCODER_TYPES else "causal-lm"


def ensure_folder(source: ModelSource, progress: Progress | None = None) -> Path:
    """An HF folder for the source; converts a GGUF file into the cache the first time."""
    if source.needs_conversion:
        _convert_gguf(source, progress or NullProgress())
    assert source.folder is not None
    return source.folder


def _convert_gguf(source: ModelSource, progress: Progress) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = source.gguf
    assert gguf is not None and source.folder is not None
    progress.log(f"converting {gguf.name} to safetensors in {source.folder} (once)")
    progress.start("convert", total=3)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    progress.advance("convert")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    progress.advance("convert")
    # A GGUF-loaded model refuses save_pretrained until its (already applied) quantization is dropped.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    source.folder.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so an interrupted conversion never looks finished.
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=source.folder.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(gguf_fingerprint(gguf)))
        if source.folder.exists():
            shutil.rmtree(source.folder)
        tmp.rename(source.folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    progress.advance("convert")
    progress.finish("convert")


def load_tokenizer(source: ModelSource | str, trust_remote_code: bool = False, progress: Progress | None = None):
    from transformers import AutoTokenizer

    source = resolve(source) if isinstance(source, str) else source
    folder = ensure_folder(source, progress)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    spec: ModelSource | str,
    dtype: str = "float32",
    trust_remote_code: bool = False,
    task: str | None = None,
    num_labels: int | None = None,
    progress: Progress | None = None,
    labels: list[str] | None = None,
    load_options: dict | None = None,
    tokenizer=None,
):
    """Load (model, tokenizer). `task` defaults to what the model is: causal-lm or encoder.

    For task "classification", `labels` names the classes (the new head gets one output each);
    `load_options` go to from_pretrained as they are (a technique's quantization config, say).
    """
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    source = resolve(spec) if isinstance(spec, str) else spec
    folder = ensure_folder(source, progress)
    task = task or model_task(folder)
    classes = {
        "causal-lm": AutoModelForCausalLM,
        "encoder": AutoModel,
        "classification": AutoModelForSequenceClassification,
    }
    if task not in classes:
        raise ModelNotFoundError(f"unknown model task '{task}'; expected one of {', '.join(classes)}")
    tokenizer = tokenizer or load_tokenizer(source, trust_remote_code=trust_remote_code)
    kwargs = dict(load_options or {})
    if labels:
        kwargs.update(num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    elif num_labels:
        kwargs["num_labels"] = num_labels
    if task == "classification":
        kwargs.setdefault("pad_token_id", tokenizer.pad_token_id)  # decoders find each row's last token by it
    try:
        model = classes[task].from_pretrained(
            folder,
            dtype=DTYPES[dtype],
            trust_remote_code=trust_remote_code,
            use_safetensors=True,  # never unpickle weights
            **kwargs,
        )
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"cannot load model from {folder}: {e}") from None
    return model, tokenizer
