"""Launch files for sharded multi-GPU training (DeepSpeed ZeRO, FSDP, DDP), written and validated here.

These files are for `accelerate launch` with a script of your own (graft launches its own loop with
`graft train --nproc N`: graft/train/launch.py, parallel.py). Values that depend on the model or the
launch (bucket sizes, the global batch) are left "auto" for accelerate / the transformers Trainer to
fill; everything graft's config says is written out.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import yaml

from graft.config import RunConfig
from graft.errors import ConfigError

ZERO_STAGE = {"zero1": 1, "zero2": 2, "zero3": 3}
MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # accelerate's names
DISTRIBUTED_TYPE = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "zero1": "DEEPSPEED", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED"}
DEEPSPEED_FILE, ACCELERATE_FILE = "deepspeed.json", "accelerate_config.yaml"
BNB_OPTIMIZERS = ("adamw8bit", "paged_adamw8bit")


def check_distributed(cfg: RunConfig, technique=None, processes: int = 1) -> list[str]:
    """Refuse distributed settings that cannot work on any machine; return warnings for ignored ones.

    `processes`: how many processes this run has (torchrun's world size; 1 for `graft distributed config`)."""
    d, t = cfg.distributed, cfg.train
    warnings: list[str] = []
    if processes > 1 and t.optimizer == "mezo":
        raise ConfigError(f"train.optimizer=mezo cannot run in {processes} processes: MeZO has no gradients to "
                          "all-reduce", hint="train with one process (no --nproc)")

    if d.offload != "none" and d.strategy in ("none", "ddp"):
        raise ConfigError(f"distributed.offload={d.offload} needs a sharding strategy (zero1, zero2, zero3 or fsdp); "
                          f"distributed.strategy is {d.strategy}")
    if d.offload == "nvme":
        if d.strategy != "zero3":
            raise ConfigError(
                f"distributed.offload=nvme needs distributed.strategy=zero3 (ZeRO-Infinity), not {d.strategy}: "
                "DeepSpeed's stages 1-2 would keep the states in CPU memory anyway and FSDP offloads to CPU only",
                hint="use distributed.offload=cpu, or distributed.strategy=zero3")
        if not d.nvme_path:
            raise ConfigError("distributed.offload=nvme needs distributed.nvme_path: a folder on a fast local NVMe disk")
    elif d.nvme_path:
        warnings.append(f"distributed.nvme_path is ignored: distributed.offload is {d.offload}, not nvme")
    if d.strategy != "none" and t.optimizer == "mezo":
        raise ConfigError(f"train.optimizer=mezo cannot run with distributed.strategy={d.strategy}: MeZO has no "
                          "gradients or optimizer state to all-reduce or shard", hint="set distributed.strategy=none")
    if d.strategy in ZERO_STAGE and d.offload != "none" and t.optimizer != "adamw":
        raise ConfigError(f"distributed.offload={d.offload} runs the optimizer step on the CPU with DeepSpeed's CPU "
                          f"Adam; train.optimizer={t.optimizer} cannot run there",
                          hint="use train.optimizer=adamw with offload, or distributed.offload=none")
    if d.strategy == "fsdp" and t.optimizer in BNB_OPTIMIZERS:
        warnings.append(f"train.optimizer={t.optimizer} with FSDP is untested by graft: FSDP2 hands the optimizer "
                        "DTensor shards, which bitsandbytes does not mention supporting")
    if technique is not None and technique.family == "quantised" and d.strategy in ("zero3", "fsdp"):
        raise ConfigError(f"distributed.strategy={d.strategy} cannot shard technique '{technique.name}': its 4-bit "
                          "base weights are packed bitsandbytes tensors that ZeRO-3 / FSDP cannot partition",
                          hint="use zero2 or ddp (the frozen 4-bit base is small enough to replicate)")
    if d.strategy == "none" and d.num_gpus > 1:
        warnings.append(f"distributed.num_gpus={d.num_gpus} is ignored with distributed.strategy=none (one device)")
    if d.strategy == "ddp" and d.num_gpus == 1:
        warnings.append("distributed.strategy=ddp with distributed.num_gpus=1 replicates over one GPU: no gain")
    return warnings


def deepspeed_config(cfg: RunConfig) -> dict:
    """The DeepSpeed JSON for a ZeRO strategy (stage, offload, precision, batch, clipping)."""
    d, t = cfg.distributed, cfg.train
    if d.strategy not in ZERO_STAGE:
        raise ConfigError(f"distributed.strategy={d.strategy} is not a DeepSpeed ZeRO stage (zero1, zero2, zero3)")
    stage = ZERO_STAGE[d.strategy]
    # bucket sizes scale with the hidden size: accelerate and the Trainer fill "auto" from the model
    zero: dict = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True, "reduce_bucket_size": "auto"}
    if stage == 3:
        zero.update(stage3_prefetch_bucket_size="auto", stage3_param_persistence_threshold="auto",
                    stage3_gather_16bit_weights_on_model_save=True)  # save_pretrained gets whole weights
    out: dict = {
        "train_micro_batch_size_per_gpu": t.batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "train_batch_size": "auto",  # micro x accumulation x processes: known at launch
        "gradient_clipping": t.max_grad_norm or 0.0,  # 0: no clipping
        "bf16": {"enabled": t.precision == "bf16"},
        "fp16": {"enabled": t.precision == "fp16", "loss_scale": 0},  # 0: dynamic loss scaling
        "zero_optimization": zero,
    }
    if d.offload != "none":
        target = {"device": d.offload, "pin_memory": True}
        if d.offload == "nvme":
            target["nvme_path"] = d.nvme_path
        zero["offload_optimizer"] = dict(target)
        if stage == 3:
            zero["offload_param"] = dict(target)
        # offloaded steps run on the CPU: DeepSpeed builds its CPU Adam from this section
        out["optimizer"] = {"type": "AdamW", "params": {"lr": t.lr, "weight_decay": t.weight_decay,
                                                         "betas": [0.9, 0.999], "eps": 1e-8}}
    elif t.optimizer != "adamw":
        out["zero_allow_untested_optimizer"] = True  # DeepSpeed lists torch Adam/AdamW/Adagrad as tested
    return out


def fsdp_config(cfg: RunConfig, layer_cls_name: str) -> dict:
    """accelerate's fsdp_config section: FSDP2, full sharding, one unit per decoder layer."""
    return {
        "fsdp_version": 2,  # per-parameter sharding: frozen and trainable weights mix freely (peft)
        "fsdp_reshard_after_forward": True,  # FULL_SHARD (False would be SHARD_GRAD_OP)
        "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "fsdp_transformer_layer_cls_to_wrap": layer_cls_name,
        "fsdp_offload_params": cfg.distributed.offload == "cpu",
        "fsdp_state_dict_type": "FULL_STATE_DICT",  # saves as save_pretrained writes
        "fsdp_cpu_ram_efficient_loading": True,  # rank 0 reads the weights, the others get them sent
        # accelerate's own checkpointing: the model's would add a second all-gather in backward
        "fsdp_activation_checkpointing": cfg.train.gradient_checkpointing,
    }


def accelerate_config(cfg: RunConfig, deepspeed_file: Path | None = None, layer_cls_name: str | None = None) -> dict:
    """accelerate's launch config (what `accelerate config` would write) for the run's strategy."""
    d = cfg.distributed
    if d.strategy not in DISTRIBUTED_TYPE:
        raise ConfigError("distributed.strategy=none: there is nothing to launch; pick ddp, zero1-3 or fsdp")
    out = {
        "compute_environment": "LOCAL_MACHINE", "distributed_type": DISTRIBUTED_TYPE[d.strategy],
        "num_machines": 1, "machine_rank": 0, "num_processes": d.num_gpus, "gpu_ids": "all",
        "mixed_precision": MIXED_PRECISION[cfg.train.precision], "use_cpu": False, "debug": False,
        "downcast_bf16": False, "rdzv_backend": "static", "same_network": True, "main_training_function": "main",
    }
    if d.strategy in ZERO_STAGE:
        if deepspeed_file is None:
            raise ValueError("a ZeRO strategy needs the DeepSpeed file's path")
        # precision lives in the DeepSpeed file; accelerate refuses a mixed_precision beside one
        del out["mixed_precision"]
        out["deepspeed_config"] = {"deepspeed_config_file": str(deepspeed_file),
                                   "zero3_init_flag": ZERO_STAGE[d.strategy] == 3}  # partition while loading
    elif d.strategy == "fsdp":
        if not layer_cls_name:
            raise ConfigError("distributed.strategy=fsdp needs the model's decoder layer class (e.g. LlamaDecoderLayer)")
        out["fsdp_config"] = fsdp_config(cfg, layer_cls_name)
    return out


def write_launch_files(cfg: RunConfig, folder: str | Path, layer_cls_name: str | None = None) -> list[Path]:
    """Write deepspeed.json (ZeRO) and accelerate_config.yaml into `folder`, validated; return the paths.

    FSDP needs no second file: accelerate reads its settings from the accelerate config itself.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    ds_path = None
    if cfg.distributed.strategy in ZERO_STAGE:
        ds = deepspeed_config(cfg)
        validate_deepspeed(ds)
        ds_path = (folder / DEEPSPEED_FILE).resolve()  # absolute: accelerate resolves it from the launch dir
        ds_path.write_text(json.dumps(ds, indent=2) + "\n")
        paths.append(ds_path)
    acc = accelerate_config(cfg, ds_path, layer_cls_name)
    acc_path = folder / ACCELERATE_FILE
    acc_path.write_text(yaml.safe_dump(acc, sort_keys=False))
    validate_accelerate(acc_path)
    paths.append(acc_path)
    return paths


def validate_deepspeed(config: dict) -> bool:
    """Check `config` with DeepSpeed's own parser; False when deepspeed is not installed (it is optional)."""
    concrete = _fill_auto(copy.deepcopy(config))
    concrete.pop("train_batch_size", None)  # DeepSpeed derives it from the world size it sees (1 here)
    # DeepSpeed logs its accelerator choice at import and its config at INFO: not the user's business here
    ds_logger = logging.getLogger("DeepSpeed")
    ds_logger.addFilter(_errors_only)
    try:
        try:
            from deepspeed.runtime.config import DeepSpeedConfig
        except ImportError:
            return False
        DeepSpeedConfig(concrete)
    except Exception as e:  # pydantic ValidationError, AssertionError, ValueError: all mean "invalid"
        raise ConfigError(f"DeepSpeed rejects the generated config: {e}") from None
    finally:
        ds_logger.removeFilter(_errors_only)
    return True


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


def validate_accelerate(path: Path) -> None:
    """Load the file as `accelerate launch` does, and check every nested key is one accelerate knows."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    try:
        loaded = load_config_from_file(str(path))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"accelerate rejects {path}: {e}") from None
    known = {a.dest for a in launch_command_parser()._actions}
    nested = {**(loaded.fsdp_config or {}), **(loaded.deepspeed_config or {})}
    unknown = sorted(k for k in nested if k not in known)
    if unknown:  # accelerate would set them silently and ignore them
        raise ConfigError(f"{path}: accelerate has no option {', '.join(unknown)}")


def layer_class_names(cfg: RunConfig) -> str:
    """The model's repeated block class(es) for FSDP wrapping (e.g. LlamaDecoderLayer), read from its
    config on the meta device: no weights are loaded, a GGUF file is not converted."""
    import torch
    from transformers import AutoConfig, AutoModel

    from graft.models import resolve

    source = resolve(cfg.model.name, revision=cfg.model.revision, download=False)
    if source.folder is not None and (source.folder / "config.json").is_file():
        config = AutoConfig.from_pretrained(source.folder, trust_remote_code=cfg.model.trust_remote_code)
    elif source.gguf is not None:
        config = AutoConfig.from_pretrained(source.gguf.parent, gguf_file=source.gguf.name)
    else:
        raise ConfigError(f"cannot read the architecture of model '{cfg.model.name}'", hint="pass --layer-cls NAME")
    with torch.device("meta"):
        model = AutoModel.from_config(config, trust_remote_code=cfg.model.trust_remote_code)
    names = sorted(getattr(model, "_no_split_modules", None) or [])
    if not names:
        raise ConfigError(f"model '{cfg.model.name}' does not name its decoder layer class",
                          hint="pass --layer-cls NAME (the class of its repeated transformer block)")
    return ",".join(names)


def _fill_auto(node):
    """"auto" values replaced by placeholders DeepSpeed's parser accepts (the launch fills real ones)."""
    if isinstance(node, dict):
        return {k: (1_000_000 if v == "auto" else _fill_auto(v)) for k, v in node.items()}
    return node
