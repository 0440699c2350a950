"""A trained technique on disk: the technique's own files (PEFT format for peft methods) plus
`graft.json`, which says which technique, options, task and class names rebuild it.
"""

from __future__ import annotations

import json
from pathlib import Path

from graft.errors import RunError
from graft.techniques.registry import get_technique
from graft.techniques.technique import Settings, Technique

META = "graft.json"


def head_modules(model) -> tuple[str, ...]:
    """The task head a task model adds around its base (e.g. BERT's `classifier`, Llama's `score`)."""
    prefix = getattr(model, "base_model_prefix", "")
    return tuple(name for name, child in model.named_children()
                 if name != prefix and any(True for _ in child.parameters()))


def save_trained(technique: Technique, model, folder: Path, options: Settings, task: str,
                 labels: list[str] | None = None, base_model: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    technique.save(model, folder)
    meta = {"technique": technique.name, "options": options.model_dump(mode="json"), "task": task,
            "base_model": base_model}
    if labels:
        meta["labels"] = labels
    (folder / META).write_text(json.dumps(meta, indent=2) + "\n")


def read_meta(folder: Path) -> dict:
    """graft.json, or what a plain PEFT adapter folder implies (a causal-LM peft adapter)."""
    path = Path(folder) / META
    if path.is_file():
        return json.loads(path.read_text())
    if (Path(folder) / "adapter_config.json").is_file():
        return {"technique": None, "options": {}, "task": "causal-lm"}
    raise RunError(f"{folder} holds no trained technique (no {META} and no adapter_config.json)")


def attach(base, folder: Path, meta: dict):
    """The trained model: `base` plus what `save_trained` wrote into `folder`."""
    if meta.get("technique") is None:
        from peft import PeftModel

        return PeftModel.from_pretrained(base, folder)
    technique = get_technique(meta["technique"])
    return technique.load(base, Path(folder), technique.parse(meta.get("options", {})))
