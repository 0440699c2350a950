"""Put bottleneck adapters into a model, save and load them, switch them off; no merging."""

from __future__ import annotations

import json
import types
from contextlib import contextmanager
from pathlib import Path

import torch

from graft.errors import ConfigError, RunError
from graft.techniques.bottleneck.config import BottleneckSettings, insertion_points
from graft.techniques.bottleneck.layer import Adapters, Bottleneck, Hook
from graft.techniques.technique import ApplyContext

ATTR = "graft_bottleneck"  # the model attribute holding the Adapters
WEIGHTS = "adapter_model.safetensors"
CONFIG = "bottleneck_config.json"


def adapters_of(model) -> Adapters:
    found = getattr(model, ATTR, None)
    if not isinstance(found, Adapters):
        raise ConfigError("this model has no bottleneck adapters")
    return found


def inject(model, s: BottleneckSettings, head=(), points: list[str] | None = None):
    """Freeze `model`, add an adapter after each insertion point (or after `points`), train `head`."""
    if isinstance(getattr(model, ATTR, None), Adapters):
        raise ConfigError("this model already has bottleneck adapters")
    modules = dict(model.named_modules())
    points = points if points is not None else insertion_points(list(modules), s)
    missing = [p for p in points if p not in modules]
    if not points or missing:
        kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
        what = f"the modules {missing} are not in it" if missing else (
            f"no module name ends with {s.targets}" if s.targets else "no insertion points are known for it")
        raise ConfigError(
            f"bottleneck adapters cannot go into this '{kind}' model: {what}; set the technique option "
            "`targets` to the module-name suffixes whose outputs should get an adapter",
            hint="e.g. targets: [self_attn.o_proj, mlp.down_proj] (ends of the names model.named_modules() gives)")
    owner = Adapters(points, list(head))
    owner.options = s.model_dump(mode="json")
    for point in points:  # every adapter built before any hook: a failure leaves the model untouched
        weight = next(modules[point].parameters(), None)
        # Trainable weights stay float32 next to a half-precision (or quantised) base, as peft's do.
        dtype = weight.dtype if weight is not None and weight.dtype in (torch.float32, torch.float64) else torch.float32
        owner.adapters[Adapters.key(point)] = Bottleneck(
            _width(model, modules[point], point), s.size, s.activation, s.dropout,
            device=weight.device if weight is not None else None, dtype=dtype)
    model.requires_grad_(False)
    for point in points:
        owner.handles.append(modules[point].register_forward_hook(Hook(owner.adapters[Adapters.key(point)], owner)))
    setattr(model, ATTR, owner)
    for name in head:
        model.get_submodule(name).requires_grad_(True)
    model.disable_adapter = types.MethodType(disabled, model)  # as peft's, for evaluate --compare-base
    return model


def apply(model, s: BottleneckSettings, ctx: ApplyContext):
    return inject(model, s, ctx.head)


def _width(model, module, point: str) -> int:
    """Features of the module's output: Linear's out_features, GPT-2 Conv1D's nf, else the hidden size."""
    for attr in ("out_features", "nf"):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    config = getattr(model, "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    if isinstance(getattr(text, "hidden_size", None), int):
        return text.hidden_size
    raise ConfigError(f"cannot tell the output width of '{point}' ({type(module).__name__}) for a bottleneck adapter")


def trained_state(model) -> dict[str, torch.Tensor]:
    """The adapters' and the task head's tensors, under the model's own state-dict keys."""
    owner = adapters_of(model)
    state = {f"{ATTR}.{k}": v for k, v in owner.state_dict().items()}
    for name in owner.head:
        state.update({f"{name}.{k}": v for k, v in model.get_submodule(name).state_dict().items()})
    return state


def save(model, folder: Path) -> None:
    from safetensors.torch import save_file

    owner = adapters_of(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in trained_state(model).items()}, folder / WEIGHTS)
    # With the insertion points recorded, a reload does not depend on today's family table.
    config = {"options": owner.options, "points": owner.points, "head": owner.head,
              "model_type": getattr(getattr(model, "config", None), "model_type", None)}
    (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def load(base, folder: Path, settings: BottleneckSettings | None = None):
    """`base` with the adapters (and head) saved in `folder`; options from graft.json or bottleneck_config.json."""
    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise RunError(f"{folder} has no {CONFIG}: not a saved bottleneck adapter")
    config = json.loads((folder / CONFIG).read_text())
    if settings is None:
        settings = BottleneckSettings.model_validate(config["options"])
    model = inject(base, settings, config.get("head", []), config["points"])
    restore(model, folder)
    return model


def restore(model, folder: Path) -> None:
    """Load the saved tensors into the adapters (and head) already in `model`; every one must be there."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(folder) / WEIGHTS
    try:
        saved = load_file(path)
    except (OSError, SafetensorError) as e:
        raise RunError(f"cannot read bottleneck adapter weights {path}: {e}") from e
    want = trained_state(model)
    missing, extra = sorted(set(want) - set(saved)), sorted(set(saved) - set(want))
    if missing or extra:
        raise RunError(f"{path} does not match this model's bottleneck adapters: "
                       + "; ".join(f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                                   for label, keys in (("missing", missing), ("unexpected", extra)) if keys))
    bad = [k for k in want if want[k].shape != saved[k].shape]
    if bad:
        raise RunError(f"{path}: {bad[0]} has shape {tuple(saved[bad[0]].shape)}, the model's is {tuple(want[bad[0]].shape)}")
    with torch.no_grad():
        for k, tensor in want.items():
            tensor.copy_(saved[k])


@contextmanager
def disabled(model):
    """Inside the block the model is its base: every adapter is skipped (the head stays)."""
    owner = adapters_of(model)
    before, owner.enabled = owner.enabled, False
    try:
        yield model
    finally:
        owner.enabled = before


def merge(model=None):
    """Bottleneck adapters cannot be folded into the base weights; always raises ConfigError."""
    raise ConfigError(
        "bottleneck adapters cannot be merged into the base model: merging is not possible because a "
        "nonlinearity sits between the down- and up-projection, so an adapter is not a linear map that "
        "could fold into the weights of the layer it follows",
        hint="keep the adapters attached (load the run as it is) or train a mergeable technique such as lora")
