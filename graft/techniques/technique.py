"""What a fine-tuning technique is: a name, its options, what it needs, and how it changes a model.

A technique is a plain `Technique` value built from small functions, so a plugin is one module
exposing one object (see docs/techniques.md). Defaults suit peft-backed methods; a technique
that is not a peft method replaces `save`, `load` and `restore`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

from graft.errors import TechniqueUnavailableError

ModelKind = Literal["causal-lm", "classification", "seq2seq"]
FAMILIES = ("reparametrisation", "additive", "prompt", "selective", "quantised", "full")


class Settings(BaseModel):
    """Base of every technique's options: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class NoSettings(Settings):
    pass


@dataclass(frozen=True)
class Requirement:
    """Something the machine must have; `check()` is cheap and imports nothing heavy."""

    what: str  # e.g. "bitsandbytes>=0.48", "a CUDA GPU"
    check: Callable[[], bool]


@dataclass
class ApplyContext:
    """What `apply` may need beyond the model and its options."""

    kind: ModelKind = "causal-lm"
    total_steps: int = 1  # optimizer steps of the run (AdaLoRA schedules its rank budget on it)
    model_path: Path | None = None  # the model folder, with its tokenizer (prompt-tuning text init)
    head: tuple[str, ...] = ()  # new task-head modules that train alongside (classification)


@dataclass(frozen=True)
class MemoryProfile:
    """What the memory estimator needs beyond the trainable-parameter count.

    The count itself comes from applying the technique to the model on the meta device.
    """

    trains_base: bool = False  # the base weights get gradients and optimizer state
    base_bits: int | None = None  # storage bits of the frozen base weights (4 for NF4); None: model dtype
    virtual_tokens: int = 0  # positions every sequence gains (prompt methods)
    activation_factor: float = 1.0  # activation memory relative to plain LoRA at the same batch


def _peft_save(model, folder: Path) -> None:
    model.save_pretrained(folder)


def _peft_load(base, folder: Path, settings: Settings):
    from peft import PeftModel

    return PeftModel.from_pretrained(base, folder)


def _peft_restore(model, folder: Path) -> None:
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))


def _no_load_options(settings: Settings, kind: ModelKind) -> dict[str, Any]:
    return {}


def _default_memory(settings: Settings) -> MemoryProfile:
    return MemoryProfile()


@dataclass(frozen=True)
class Technique:
    name: str
    family: str  # one of FAMILIES
    description: str
    apply: Callable[[Any, Settings, ApplyContext], Any]  # (model, options, context) -> trainable model
    settings: type[Settings] = NoSettings
    kinds: frozenset[str] = frozenset({"causal-lm", "classification", "seq2seq"})
    requires: tuple[Requirement, ...] = ()
    # Saving: `save` writes the trained part; `load` rebuilds the trained model from a fresh base and
    # that folder; `restore` loads a checkpoint's weights into an already-applied model (resume).
    save: Callable[[Any, Path], None] = _peft_save
    load: Callable[[Any, Path, Settings], Any] = _peft_load
    restore: Callable[[Any, Path], None] = _peft_restore
    weights_file: str = "adapter_model.safetensors"  # what `save` writes (checkpoints check it exists)
    # from_pretrained kwargs the base needs (QLoRA loads it 4-bit)
    load_options: Callable[[Settings, ModelKind], dict[str, Any]] = _no_load_options
    memory: Callable[[Settings], MemoryProfile] = _default_memory
    mergeable: bool = True  # can fold into the base weights (merge_adapter / merge_and_unload)
    packs_sequences: bool = True  # trains on padding-free packed rows; prompt methods need one example a row
    # Training hooks, both optional: after each optimizer step, and an extra loss term per micro-batch.
    on_step: Callable[[Any, int], None] | None = None
    regularizer: Callable[[Any], Any] | None = None
    source: str = field(default="", compare=False)  # the distribution that registered it

    def parse(self, options: dict[str, Any]) -> Settings:
        return self.settings.model_validate(options)

    def missing(self) -> list[str]:
        """Requirements this machine does not meet (empty: available)."""
        return [r.what for r in self.requires if not _safe(r.check)]

    def check_available(self) -> None:
        missing = self.missing()
        if missing:
            raise TechniqueUnavailableError(
                f"technique '{self.name}' needs {' and '.join(missing)}; this machine has not",
                hint="`graft techniques list` shows what runs here",
            )

    def supports(self, kind: str) -> bool:
        return kind in self.kinds

    def packs(self, kind: str) -> bool:
        """Whether a `kind` run with this technique lays examples end to end (padding-free rows).

        Only causal LMs pack; classification and prompt methods need one example a row."""
        return self.packs_sequences and kind == "causal-lm"


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False
