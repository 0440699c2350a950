"""What a job's spec may hold, per kind, checked when it is submitted (nothing bad gets queued).

    train      a RunConfig dict (graft.config); output_dir is the jobs runs root, whatever it says
    evaluate   {run, data?, limit?, compare_base?, max_new_tokens?, batch_size?}
    export     {run, format?, quants?, dtype?, verify?}
    benchmark  a benchmark matrix (graft/bench/matrix.py); every cell is validated
    download   {hub_id, revision?}: a Hub model's safetensors and tokenizer files, into the Hub cache
`run` names a run folder in the runs root, or a train job by its id.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graft.config import RunConfig
from graft.errors import ConfigError
from graft.paths import safe_name


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run: str = Field(..., min_length=1, description="run folder name in the runs root, or a train job's id")


class EvaluateSpec(_Spec):
    data: str | None = None
    limit: int | None = Field(100, ge=1)
    compare_base: bool = False
    max_new_tokens: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)


class ExportSpec(_Spec):
    format: Literal["merged", "gguf"] = "merged"
    quants: list[str] | None = None
    dtype: str = "float32"
    verify: bool = True


class DownloadSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hub_id: str = Field(..., description="ORG/NAME on the Hugging Face Hub", pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    revision: str | None = Field(None, description="branch, tag or commit")


def validate(kind: str, spec: Any) -> dict:
    """The spec as it will be stored; a ConfigError naming the field when it is wrong."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{kind} spec: expected a mapping, got {type(spec).__name__}")
    if kind == "train":
        cfg = RunConfig.from_dict(spec, source="train spec")
        _check_name(cfg.run_name, "train spec: run_name")
        return cfg.model_dump(mode="json")
    if kind == "benchmark":
        from graft.bench.matrix import Matrix

        try:
            Matrix.from_dict(spec, source="benchmark spec").expand()  # validates every cell's config
        except (TypeError, ValueError, AttributeError) as e:  # shapes the matrix reader does not name
            raise ConfigError(f"benchmark spec: {e}") from None
        return spec
    model = {"evaluate": EvaluateSpec, "export": ExportSpec, "download": DownloadSpec}[kind]
    try:
        checked = model.model_validate(spec)
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"{kind} spec: {'.'.join(map(str, err['loc'])) or 'spec'}: {err['msg']}") from None
    if isinstance(checked, _Spec):
        _check_name(checked.run, f"{kind} spec: run")
    return checked.model_dump(mode="json")


def _check_name(name: str | None, where: str) -> None:
    if name is None:
        return
    try:
        ok = safe_name(name) == name
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{where}: {name!r} is not a plain folder name (letters, digits, - _ .)")
