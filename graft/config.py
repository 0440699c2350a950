"""The one validated description of a run: YAML file + CLI overrides -> RunConfig.

The resolved config is saved in the run folder, so a run can be resumed, evaluated or repeated
from its folder alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from graft.errors import ConfigError

DataFormat = Literal["auto", "alpaca", "sharegpt", "messages", "text", "classification"]


class _Section(BaseModel):
    # Unknown keys are typos; say so instead of ignoring them.
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelConfig(_Section):
    name: str = Field("smollm2-135m-instruct", description="catalog name, local folder, .gguf file or Hub id")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    trust_remote_code: bool = False
    revision: str | None = None


class DataConfig(_Section):
    path: str = Field(..., description="JSON/JSONL/CSV/Parquet/TXT file, or a Hub dataset id")
    format: DataFormat = "auto"
    split: str = "train"
    eval_path: str | None = None
    eval_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    eval_size: int | None = Field(None, ge=0, description="rows held out; overrides eval_fraction")
    max_length: int = Field(512, ge=8)
    train_on: Literal["responses", "all"] = "responses"
    packing: bool = False
    skip_bad_rows: bool = False
    limit: int | None = Field(None, ge=1, description="use only the first N rows")
    system_prompt: str | None = None


class TechniqueConfig(_Section):
    """`name` picks the technique; every other key is one of its options (`graft techniques show NAME`).

    Options are validated by the technique's own settings model and stored with their defaults
    filled in, so the saved config says exactly what ran.
    """

    model_config = ConfigDict(extra="allow", protected_namespaces=())
    name: str = "lora"

    @model_validator(mode="after")
    def _validate_options(self) -> "TechniqueConfig":
        from graft.errors import GraftError
        from graft.techniques import get_technique

        try:
            technique = get_technique(self.name)
        except GraftError as e:
            raise ValueError(str(e) + (f" ({e.hint})" if e.hint else "")) from None
        try:
            parsed = technique.parse(dict(self.model_extra or {}))
        except ValidationError as e:
            raise ValueError(f"{self.name}: " + _describe(e)) from None
        self.__pydantic_extra__ = parsed.model_dump(mode="json")
        return self

    @property
    def options(self):
        """The technique's validated settings object."""
        from graft.techniques import get_technique

        return get_technique(self.name).parse(dict(self.model_extra or {}))


class TrainConfig(_Section):
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(2e-4, gt=0)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    warmup_steps: int | None = Field(None, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    seed: int = 42
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="bf16/fp16: autocast mixed precision on CUDA (fp16 with loss scaling); CPU: fp32")
    tf32: bool = Field(False, description="TF32 matmuls on Ampere+ GPUs (fp32 storage, faster matmul)")
    optimizer: Literal["adamw", "adafactor", "adamw8bit", "paged_adamw8bit", "sgd", "mezo"] = Field(
        "adamw", description="adamw (fp32 states, 8 B/param), adafactor (factored states), adamw8bit / "
        "paged_adamw8bit (bitsandbytes, 2 B/param), sgd, mezo (zeroth-order: forward passes only, no states)")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="SGD momentum (0: no momentum state)")
    mezo_eps: float = Field(1e-3, gt=0, description="MeZO perturbation scale")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward: less memory, ~30% more compute")
    log_every: int = Field(1, ge=1)
    eval_every: int | None = Field(None, ge=1)
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: all cores")


class DistributedConfig(_Section):
    """How the processes of `graft train --nproc N` share the run: DDP, FSDP2 or DeepSpeed ZeRO (docs/distributed.md)."""

    strategy: Literal["none", "ddp", "zero1", "zero2", "zero3", "fsdp"] = "none"
    offload: Literal["none", "cpu", "nvme"] = Field("none", description="ZeRO offload of optimizer states (and params for zero3)")
    nvme_path: str | None = Field(None, description="folder on a fast local disk, for offload: nvme")
    num_gpus: int = Field(1, ge=1, description="processes (GPUs) the run is sharded over; the estimate divides by it, "
                                               "and a launch records its own number here")


class MemoryConfig(_Section):
    check: bool = Field(True, description="refuse a run whose memory estimate does not fit the device (--force: false)")
    device: str | None = Field(None, description="estimate for this GPU (h100, a100-40, rtx4090, ...) instead of this machine")
    vram: str | None = Field(None, description="estimate for this much device memory, e.g. 24GiB")


class CheckpointConfig(_Section):
    every: int | None = Field(None, ge=1, description="save a checkpoint every N optimizer steps")
    keep_last: int = Field(2, ge=1)


class RunConfig(_Section):
    task: Literal["auto", "causal-lm", "classification"] = Field(
        "auto", description="auto: classification for encoder models and labelled data, else causal-lm")
    model: ModelConfig = ModelConfig()
    data: DataConfig
    technique: TechniqueConfig = TechniqueConfig()
    train: TrainConfig = TrainConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    distributed: DistributedConfig = DistributedConfig()
    memory: MemoryConfig = MemoryConfig()
    output_dir: str = "runs"
    run_name: str | None = None

    # -- loading / saving -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "RunConfig":
        try:
            return cls.model_validate(raw)
        except ValidationError as e:
            raise ConfigError(f"{source}: " + _describe(e)) from None

    @classmethod
    def load(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(apply_overrides(raw, overrides or {}), source=str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``train.lr``) in a nested dict; a None value sets null (unsets an option)."""
    out = _deepcopy(raw)
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"option {dotted}: '{key}' is not a section")
            node = child
        node[leaf] = value
    return out


def parse_set_option(item: str, flag: str = "--set", example: str = "train.lr=1e-4") -> tuple[str, Any]:
    """``train.max_steps=50`` -> ("train.max_steps", 50); the value is read as YAML, ``null`` unsets."""
    if "=" not in item:
        raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {example}")
    key, _, value = item.partition("=")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        return key.strip(), value


def _deepcopy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown option"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
