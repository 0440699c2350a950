"""The estimator's entry point for a run: everything it needs from the model folder's config.json
and the technique applied on the meta device, nothing loaded."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from graft.memory.devices import DeviceSpec, this_machine
from graft.memory.estimate import estimate
from graft.memory.result import Estimate


def meta_counts(folder: str | Path, technique: str, options: dict, kind: str = "causal-lm", num_labels: int = 2) -> dict:
    """trainable/total values (as peft counts them), quantisable linear weights and the trainable shapes."""
    return dict(_meta_counts(str(folder), technique, _frozen(options), kind, num_labels))


@lru_cache(maxsize=32)
def _meta_counts(folder: str, technique: str, options: tuple, kind: str, num_labels: int) -> tuple:
    import torch

    from graft.techniques import count_parameters
    from graft.techniques.counting import apply_on_meta, skeleton
    from graft.techniques.saved import head_modules

    model = skeleton(folder, kind, num_labels)
    head = head_modules(model) if kind == "classification" else ()
    out_embed = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    skip = {id(out_embed)} | {id(m) for name in head for m in model.get_submodule(name).modules()}
    quantizable = sum(m.weight.numel() for m in model.modules()
                      if isinstance(m, torch.nn.Linear) and id(m) not in skip)
    model = apply_on_meta(model, technique, dict(options), kind)
    trainable, total = count_parameters(model)
    shapes = tuple(tuple(p.shape) for p in model.parameters() if p.requires_grad)
    return (("trainable", trainable), ("total", total), ("quantizable", quantizable), ("trainable_shapes", list(shapes)))


def _frozen(options: dict) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))


def model_config(folder: str | Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder)


def estimate_run(cfg, model_folder: str | Path, technique, options, task: str = "causal-lm",
                 device: DeviceSpec | None = None, tokens_per_micro_batch: int | None = None,
                 targets_per_micro_batch: int | None = None, advise: bool = True, data_tokens: int | None = None,
                 num_labels: int = 2) -> Estimate:
    """The estimate for `cfg` (technique: a Technique, options: its settings object), with advice when it does not fit.

    tokens/targets per micro-batch: the largest micro-batch's positions (rows x padded width for
    padded rows) and target count; default the worst case batch_size x max_length. Raises nothing
    of its own: the caller decides what not fitting means.
    """
    device = device or this_machine()
    config = model_config(model_folder)
    opts = options.model_dump(mode="json") if hasattr(options, "model_dump") else dict(options or {})

    def one(c) -> Estimate:
        tech = _technique(c.technique.name)
        counts = meta_counts(model_folder, c.technique.name, c.technique.options.model_dump(mode="json"), task, num_labels)
        packed = tech.packs(task)
        return estimate(c, config, counts, tech.memory(c.technique.options), device, tokens_per_micro_batch,
                        targets_per_micro_batch, family=tech.family, packed=packed,
                        trainable_shapes=counts["trainable_shapes"], data_tokens=data_tokens, task=task,
                        num_labels=num_labels)

    if cfg.technique.name != technique.name or cfg.technique.options.model_dump(mode="json") != opts:
        from graft.config import RunConfig, apply_overrides

        raw = cfg.model_dump(mode="json")
        raw["technique"] = {"name": technique.name, **opts}
        cfg = RunConfig.from_dict(apply_overrides(raw, {}))
    result = one(cfg)
    if advise and not result.fits:
        from graft.memory.advice import advise as find

        result.advice = find(cfg, one, device)
    return result


def _technique(name: str):
    from graft.techniques import get_technique

    return get_technique(name)
