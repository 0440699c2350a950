"""The prompt template of retrieval-augmented answers: a YAML file (templates/default.yaml ships)."""

from __future__ import annotations

import string
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graft.errors import ConfigError

DEFAULT = Path(__file__).with_name("templates") / "default.yaml"
SOURCE_FIELDS = {"n", "source", "title", "page", "text"}
PROMPT_FIELDS = {"sources", "question"}


class Generation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_tokens: int = Field(256, ge=1, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: list[str] = []
    repetition_penalty: float = Field(1.0, ge=1.0, le=2.0)


class RagTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    k: int = Field(10, ge=1, le=100)
    max_context_tokens: int = Field(1500, ge=16)
    system: str = ""
    source: str
    prompt: str
    generation: Generation = Generation()

    def generation_options(self) -> dict:
        """Keyword arguments for graft's generators (stream_reply, ModelPool.stream)."""
        g = self.generation
        return {"max_new_tokens": g.max_tokens, "temperature": g.temperature, "top_p": g.top_p, "stop": list(g.stop),
                "repetition_penalty": g.repetition_penalty}


def load_template(path: str | Path | None = None) -> RagTemplate:
    """The template in `path` (the shipped default when None); a ConfigError names the file and field."""
    path = Path(path) if path is not None else DEFAULT
    if not path.is_file():
        raise ConfigError(f"template {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"template {path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"template {path}: expected a mapping of settings, got {type(data).__name__}")
    try:
        template = RagTemplate(**data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"template {path}: {where}: {err['msg']}") from e
    _check_fields(path, "source", template.source, SOURCE_FIELDS)
    _check_fields(path, "prompt", template.prompt, PROMPT_FIELDS, required={"sources", "question"})
    return template


def _check_fields(path: Path, key: str, text: str, allowed: set[str], required: set[str] = frozenset()) -> None:
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as e:
        raise ConfigError(f"template {path}: {key}: {e} (write a literal brace as {{{{ or }}}})") from e
    unknown = used - allowed
    if unknown:
        raise ConfigError(f"template {path}: {key}: unknown placeholder {{{sorted(unknown)[0]}}}; "
                          f"{key} may use {', '.join('{' + a + '}' for a in sorted(allowed))}")
    missing = required - used
    if missing:
        raise ConfigError(f"template {path}: {key} must contain {{{sorted(missing)[0]}}}")
