"""Several adapters on one base model, chosen per request without reloading the base.

Peft adapters trained on the pool's base (same dtype, same load options) join one shared
`PeftModel`; the base is served with them disabled. Anything that cannot share (a full fine-tune,
a bottleneck adapter, QLoRA's 4-bit base, another base, a peft type that will not mix with the
first one) is loaded on its own through `load_for_inference`. `describe()` says which is which.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from graft.errors import ConfigError, GraftError, ModelNotFoundError
from graft.inference.load import Trained, load_for_inference, locate
from graft.inference.stream import Completion, Reply, stream_reply
from graft.progress import Progress
from graft.techniques.technique import Technique

# a technique that keeps this default attaches as PeftModel.from_pretrained, which load_adapter repeats
_DEFAULT_LOAD = next(f.default for f in dataclasses.fields(Technique) if f.name == "load")


class UnknownModelError(ModelNotFoundError):
    """A request names a model the pool does not serve."""

    def __init__(self, model_id: str, known: Sequence[str]):
        super().__init__(f"no model '{model_id}' is served here; known: {', '.join(known)}")


@dataclass(frozen=True)
class ModelInfo:
    id: str
    base: str  # the base model's spec
    adapter: str | None  # the run/adapter folder (or other model) served; None for the base itself
    technique: str | None
    shared: bool  # runs on the pool's one copy of the base
    note: str = ""  # why it has a model of its own


class _Host:
    """One loaded model and the lock that gives it to one generation at a time."""

    def __init__(self, model, tokenizer, switchable: bool):
        self.model, self.tokenizer, self.switchable = model, tokenizer, switchable
        self.lock = threading.Lock()

    @contextmanager
    def use(self, adapter: str | None) -> Iterator[None]:
        """Held for a whole generation: set_adapter and disable_adapter change the shared model."""
        with self.lock:
            if not self.switchable or not hasattr(self.model, "disable_adapter"):
                yield
            elif adapter is None:
                with self.model.disable_adapter():
                    yield
            else:
                self.model.set_adapter(adapter)
                yield


@dataclass
class _Entry:
    info: ModelInfo
    host: _Host
    peft_name: str | None = None  # the adapter's name inside the shared PeftModel


class ModelPool:
    """A base model plus named adapters, each served under its own model id."""

    def __init__(self, base: str, adapters: Mapping[str, str | Path] | None = None, *, base_id: str | None = None,
                 dtype: str = "float32", trust_remote_code: bool = False, progress: Progress | None = None,
                 default: str | None = None):
        from graft.models import load_model
        from graft.models.resolve import resolve

        self.base, self.dtype, self.trust_remote_code = str(base), dtype, trust_remote_code
        self.base_id = base_id or resolve(self.base).name
        model, tokenizer = load_model(self.base, dtype, trust_remote_code, task="causal-lm", progress=progress)
        self._shared = _Host(model, tokenizer, switchable=True)
        self._entries: dict[str, _Entry] = {self.base_id: _Entry(ModelInfo(self.base_id, self.base, None, None, True), self._shared)}
        for name, target in (adapters or {}).items():
            self.add(name, target, progress)
        self.default = default if default in self._entries else self.base_id

    # -- what is served ---------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        return [e.info for e in self._entries.values()]

    def info(self, model_id: str) -> ModelInfo:
        return self._entry(model_id).info

    def model(self, model_id: str):
        """The module that serves `model_id` (shared ids return the same object)."""
        return self._entry(model_id).host.model

    def tokenizer(self, model_id: str):
        """The tokenizer of the model serving `model_id`."""
        return self._entry(model_id).host.tokenizer

    def describe(self) -> str:
        lines = [f"base {self.base_id} ({self.base}, {self.dtype}), loaded once"]
        for info in self.models()[1:]:
            how = "shares the base" if info.shared else f"own copy: {info.note}"
            lines.append(f"  {info.id}: {info.technique or 'a model'} from {info.adapter}; {how}")
        return "\n".join(lines)

    # -- generation -------------------------------------------------------------------------------

    def stream(self, model_id: str, messages: list[dict[str, str]], max_new_tokens: int = 256, temperature: float = 0.0,
               top_p: float = 1.0, stop: Sequence[str] | None = None, seed: int | None = None,
               repetition_penalty: float = 1.0) -> Reply:
        """`model_id`'s reply, piece by piece (see stream_reply); unknown ids and bad prompts fail here, not mid-stream."""
        entry = self._entry(model_id)
        return stream_reply(entry.host.model, entry.host.tokenizer, messages, max_new_tokens, temperature, top_p, stop,
                            seed, guard=entry.host.use(entry.peft_name), repetition_penalty=repetition_penalty)

    def complete(self, model_id: str, messages: list[dict[str, str]], **options) -> Completion:
        return self.stream(model_id, messages, **options).collect()

    # -- loading ----------------------------------------------------------------------------------

    def add(self, name: str, target: str | Path, progress: Progress | None = None) -> ModelInfo:
        """Serve `target` (a run or adapter folder, or another model) as `name`."""
        if name in self._entries:
            raise ConfigError(f"two models named '{name}'", hint="give each --adapter its own NAME=")
        trained = locate(target)
        if trained is not None and trained.meta.get("task", "causal-lm") != "causal-lm":
            raise ConfigError(f"{target} is a {trained.meta['task']} model: it labels text, it does not reply")
        technique = (trained.meta.get("technique") or _peft_type(trained.saved)) if trained else None
        note = self._cannot_share(trained) if trained else "a model of its own"
        if note is None:
            peft_name = f"adapter_{len(self._entries)}"  # user names may hold dots, which peft's module keys cannot
            note = self._join(peft_name, trained.saved)
            if note is None:
                entry = _Entry(ModelInfo(name, self.base, _where(target), technique, True), self._shared, peft_name)
        if note is not None:
            loaded = load_for_inference(target, progress, merge=True).generative()
            info = ModelInfo(name, loaded.base, _where(target), technique, False, note)
            entry = _Entry(info, _Host(loaded.model, loaded.tokenizer, switchable=False))
        self._entries[name] = entry
        return entry.info

    def _cannot_share(self, trained: Trained) -> str | None:
        """Why this trained folder cannot join the shared base, or None if it can."""
        from graft.techniques import get_technique

        technique = get_technique(trained.meta["technique"]) if trained.meta.get("technique") else None
        if not (trained.saved / "adapter_config.json").is_file():
            return f"{technique.name if technique else 'it'} is not a peft adapter"
        if technique is not None:
            options = technique.parse(trained.meta.get("options", {}))
            if technique.load_options(options, "causal-lm"):
                return f"{technique.name} loads its base its own way ({', '.join(technique.load_options(options, 'causal-lm'))})"
            if technique.load is not _DEFAULT_LOAD:
                return f"{technique.name} attaches itself its own way"
        if not _same_model(trained.base, self.base):
            return f"trained on another base ({trained.base})"
        if (trained.dtype, trained.trust_remote_code) != (self.dtype, self.trust_remote_code):
            return f"its base was loaded as {trained.dtype}, the shared one as {self.dtype}"
        return None

    def _join(self, peft_name: str, saved: Path) -> str | None:
        """Load the adapter into the shared PeftModel; what peft objected to, if it refused."""
        from peft import PeftConfig, PeftModel

        with self._shared.lock:  # an adapter added while serving waits for the running generation
            model = self._shared.model
            if not isinstance(model, PeftModel):
                self._shared.model = PeftModel.from_pretrained(model, saved, adapter_name=peft_name)
                return None
            config, first = PeftConfig.from_pretrained(saved), next(iter(model.peft_config.values()))
            if config.peft_type != first.peft_type:  # checked first: a failed injection could leave the base half-changed
                return f"a {config.peft_type.value} adapter cannot join the {first.peft_type.value} adapters on the base"
            try:
                model.load_adapter(saved, adapter_name=peft_name)
            except ValueError as e:
                return f"peft would not mix it with the others: {e}"
            return None

    def _entry(self, model_id: str) -> _Entry:
        entry = self._entries.get(model_id)
        if entry is None and model_id == self.base:
            entry = self._entries[self.base_id]  # the spec the pool was built from names the base too
        if entry is None:
            raise UnknownModelError(model_id, list(self._entries))
        return entry


# --------------------------------------------------------------------------------------------------


def open_pool(target: str | Path, adapters: Mapping[str, str | Path] | None = None,
              progress: Progress | None = None) -> ModelPool:
    """A pool from what a user names: a model (the base), or a run/adapter folder (its base, and it as an
    adapter named after the folder, which becomes the pool's default)."""
    trained = locate(target)
    if trained is None:
        return ModelPool(str(target), adapters, progress=progress)
    name = folder_name(target)
    return ModelPool(trained.base, {name: target, **(adapters or {})}, dtype=trained.dtype,
                     trust_remote_code=trained.trust_remote_code, progress=progress, default=name)


def folder_name(target: str | Path) -> str:
    """A model id for a run or adapter folder: its name (a run's `adapter/` goes by the run's)."""
    path = Path(target).resolve()
    return path.parent.name if path.name == "adapter" else path.name


def parse_adapters(specs: Sequence[str]) -> dict[str, str]:
    """`NAME=PATH` (or a bare PATH, named after its folder) -> {name: path}."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = folder_name(spec), spec
        if not name or not path:
            raise ConfigError(f"--adapter {spec!r}: expected NAME=PATH")
        if name in out:
            raise ConfigError(f"--adapter: the name '{name}' is given twice")
        out[name] = path
    return out


def _peft_type(folder: Path) -> str | None:
    """A plain peft folder's method in graft's spelling (LORA -> lora, PROMPT_TUNING -> prompt-tuning)."""
    config = folder / "adapter_config.json"
    kind = json.loads(config.read_text()).get("peft_type") if config.is_file() else None
    return kind.lower().replace("_", "-") if kind else None


def _same_model(a: str, b: str) -> bool:
    from graft.models.resolve import resolve

    if a == b:
        return True
    try:
        return resolve(a, download=False).folder.resolve() == resolve(b, download=False).folder.resolve()
    except GraftError:
        return False


def _where(target: str | Path) -> str:
    """A folder as an absolute path (the request log and drift detection match runs by it)."""
    path = Path(target)
    return str(path.resolve()) if path.exists() else str(target)
