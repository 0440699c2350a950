"""When a run does not fit: the cheapest combinations of levers that would, found by re-estimating.

Each lever has a cost: the slowdown (or quality risk) it brings, as a fraction of the run's time.
Combined costs multiply (1.3 x 1.15 ...). Rough figures, from the usual experience:
gradient checkpointing recomputes the forward (~+30% compute); halving the micro-batch while
doubling accumulation keeps the effective batch but uses the device less well (~+10% each time on a
GPU); 8-bit AdamW is close to free; Adafactor converges a little differently; QLoRA dequantises
every matmul (~+30%) and loses a little quality; bf16 autocast is faster, not slower, on a GPU;
ZeRO/FSDP need more GPUs and communicate; CPU offload is much slower; MeZO needs many times more
steps.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

from graft.memory.devices import DeviceSpec
from graft.memory.result import Advice, Estimate

QLORA_OF = {"lora": "qlora", "dora": "qdora"}


def _options(cfg, device: DeviceSpec) -> list[list[tuple[str, dict, float]]]:
    """Lever groups; one choice from each (the first, empty, choice: leave it as it is)."""
    t, dist = cfg.train, cfg.distributed
    keep = ("", {}, 0.0)
    groups = []
    if device.kind == "cuda" and t.precision == "fp32" and cfg.model.dtype == "float32":
        groups.append([keep, ("bf16 autocast", {"train.precision": "bf16"}, 0.0)])
    if not t.gradient_checkpointing:
        groups.append([keep, ("gradient checkpointing", {"train.gradient_checkpointing": True}, 0.3)])
    micro = [keep]
    b, halvings = t.batch_size, 0
    while b > 1:
        b //= 2
        halvings += 1
        factor = t.batch_size // b
        micro.append((f"micro-batch {b} x {t.grad_accum * factor} accumulation",
                      {"train.batch_size": b, "train.grad_accum": t.grad_accum * factor}, 0.1 * halvings))
    groups.append(micro)
    opt = [keep]
    if t.optimizer in ("adamw", "sgd", "adafactor"):
        if t.optimizer != "adafactor":
            opt.append(("8-bit AdamW", {"train.optimizer": "adamw8bit"}, 0.02))
            opt.append(("Adafactor", {"train.optimizer": "adafactor"}, 0.1))
    if t.optimizer != "mezo":
        opt.append(("MeZO (forward-only, many more steps)", {"train.optimizer": "mezo"}, 5.0))
    groups.append(opt)
    tech = [keep]
    name = cfg.technique.name
    half_base = device.kind == "cuda" and cfg.model.dtype == "float32"
    if name in QLORA_OF:
        tech.append((f"{QLORA_OF[name]} (4-bit base)", {"technique.name": QLORA_OF[name]}, 0.35))
    if half_base and name != "full" and not name.startswith("q"):
        # a frozen base loses nothing stored in bf16; a trained one would round its updates away
        tech.append(("bf16 base weights", {"model.dtype": "bfloat16"}, 0.05))
    if name == "full":
        tech.append(("lora instead of full fine-tuning", {"technique.name": "lora"}, 0.5))
        if half_base:
            tech.append(("lora on bf16 base weights", {"technique.name": "lora", "model.dtype": "bfloat16"}, 0.55))
        tech.append(("qlora instead of full fine-tuning", {"technique.name": "qlora"}, 0.85))
    groups.append(tech)
    if device.kind == "cuda" and dist.strategy in ("none", "ddp"):
        shard = [keep]
        for n in (2, 4, 8):
            more = 0.25 * math.log2(n)  # more GPUs, and communication
            shard.append((f"ZeRO-2 over {n} GPUs", {"distributed.strategy": "zero2", "distributed.num_gpus": n}, 0.2 + more))
            shard.append((f"ZeRO-3 over {n} GPUs", {"distributed.strategy": "zero3", "distributed.num_gpus": n}, 0.4 + more))
        shard.append(("ZeRO-2 + CPU offload (1 GPU)", {"distributed.strategy": "zero2", "distributed.offload": "cpu",
                                                        "distributed.num_gpus": 1}, 1.5))
        shard.append(("ZeRO-3 + CPU offload (1 GPU)", {"distributed.strategy": "zero3", "distributed.offload": "cpu",
                                                        "distributed.num_gpus": 1}, 2.0))
        groups.append(shard)
    return groups


def advise(cfg, estimate_fn: Callable[[object], Estimate], device: DeviceSpec, top: int = 3,
           max_levers: int = 3) -> list[Advice]:
    """The `top` cheapest lever combinations (at most `max_levers` changes) whose estimate fits."""
    from graft.config import RunConfig, apply_overrides

    base = cfg.model_dump(mode="json")
    found: list[Advice] = []
    candidates = []
    for combo in itertools.product(*_options(cfg, device)):
        chosen = [c for c in combo if c[1]]
        if not chosen or len(chosen) > max_levers:
            continue
        cost = math.prod(1 + c[2] for c in chosen) - 1
        groups = frozenset(i for i, c in enumerate(combo) if c[1])
        candidates.append((cost, groups, chosen))
    candidates.sort(key=lambda x: (x[0], len(x[2])))
    used: list[frozenset] = []
    for cost, groups, chosen in candidates:
        if any(g <= groups for g in used):
            continue  # a cheaper choice from the same levers already fits
        changes: dict = {}
        for _, c, _ in chosen:
            changes.update(c)
        raw = apply_overrides(base, changes)
        if "technique.name" in changes:  # another technique: its own options, from its defaults
            raw["technique"] = {"name": changes["technique.name"], **_shared_options(base["technique"], changes["technique.name"])}
        try:
            est = estimate_fn(RunConfig.from_dict(raw))
        except Exception:
            continue  # a combination the technique or config refuses
        if est.fits:
            found.append(Advice(changes, " + ".join(c[0] for c in chosen), round(cost, 3), est.total_bytes))
            used.append(groups)
            if len(found) >= top:
                break
    return found


def _shared_options(old: dict, new_name: str) -> dict:
    """The old technique's options the new one also has (lora's r and alpha carry over to qlora)."""
    from graft.techniques import get_technique

    fields = get_technique(new_name).settings.model_fields
    return {k: v for k, v in old.items() if k != "name" and k in fields}
