"""Load a run, an adapter folder or a plain model for use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from graft.errors import RunError
from graft.progress import Progress


@dataclass
class Loaded:
    model: object
    tokenizer: object
    has_adapter: bool
    base: str  # the base model's spec
    run_dir: Path | None = None
    task: str = "causal-lm"
    technique: str | None = None
    labels: list[str] | None = None
    mergeable: bool = True
    packed: bool = True  # scoring may pack rows (prompt methods need one example a row)

    def generative(self) -> "Loaded":
        """Self, if it can write replies; a classifier cannot."""
        if self.task != "causal-lm":
            from graft.errors import ConfigError

            raise ConfigError(f"{self.run_dir or self.base} is a {self.task} model: it labels text, it does not reply",
                              hint="score it with `graft eval`")
        return self


def load_for_inference(target: str | Path, progress: Progress | None = None, merge: bool = False) -> Loaded:
    """`target` is a run folder, a saved technique folder (PEFT format or graft.json) or anything `resolve` accepts.

    With `merge`, mergeable adapters are folded into the base (faster generation, no longer switchable).
    """
    from graft.models import load_model

    trained = locate(target)
    if trained is None:
        model, tokenizer = load_model(str(target), task="causal-lm", progress=progress)
        return Loaded(model, tokenizer, False, str(target))
    run_dir = Path(target) if (Path(target) / "config.yaml").is_file() else None
    return _load_trained(trained.base, trained.saved, trained.meta, trained.dtype, trained.trust_remote_code, merge,
                         progress, run_dir)


@dataclass
class Trained:
    """Where a run or adapter folder keeps its trained part and how its base was loaded."""

    base: str
    saved: Path
    meta: dict
    dtype: str = "float32"
    trust_remote_code: bool = False


def locate(target: str | Path) -> Trained | None:
    """The trained part of a run (its adapter, else its latest checkpoint) or adapter folder; None for a model."""
    from graft.techniques.saved import read_meta
    from graft.train.run_folder import RunFolder

    path = Path(target)
    if (path / "config.yaml").is_file():
        folder = RunFolder.open(path)
        cfg = folder.load_config()
        saved = folder.adapter
        if not ((saved / "graft.json").is_file() or (saved / "adapter_config.json").is_file()):
            latest = folder.latest_checkpoint()
            if latest is None:
                raise RunError(f"run {path} has no trained weights and no checkpoint yet")
            saved = latest[1] / "adapter"
        return Trained(cfg.model.name, saved, read_meta(saved), cfg.model.dtype, cfg.model.trust_remote_code)
    if (path / "graft.json").is_file() or (path / "adapter_config.json").is_file():
        meta = read_meta(path)
        return Trained(_base_of(path, meta), path, meta)
    return None


def _base_of(folder: Path, meta: dict) -> str:
    # graft.json keeps the name the run used (a catalog name travels; a cache path does not)
    peft_cfg = folder / "adapter_config.json"
    base = meta.get("base_model")
    base = base or (json.loads(peft_cfg.read_text()).get("base_model_name_or_path") if peft_cfg.is_file() else None)
    if not base:
        raise RunError(f"{folder} names no base model (adapter_config.json base_model_name_or_path)")
    return base


def _load_trained(base: str, saved: Path, meta: dict, dtype: str, trust_remote_code: bool, merge: bool,
                  progress: Progress | None, run_dir: Path | None) -> Loaded:
    from graft.models import load_model
    from graft.techniques import get_technique
    from graft.techniques.saved import attach

    task = meta.get("task", "causal-lm")
    technique = get_technique(meta["technique"]) if meta.get("technique") else None
    options = technique.parse(meta.get("options", {})) if technique else None
    load_options = technique.load_options(options, task) if technique else {}
    model, tokenizer = load_model(base, dtype, trust_remote_code, task=task, labels=meta.get("labels"),
                                  load_options=load_options, progress=progress)
    model = attach(model, saved, meta)
    mergeable = technique.mergeable if technique else True
    if merge and mergeable and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    packed = technique.packs(task) if technique else task == "causal-lm"
    return Loaded(model, tokenizer, True, base, run_dir, task, meta.get("technique"), meta.get("labels"), mergeable, packed)
