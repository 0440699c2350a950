"""Memory levers: every optimizer steps, check_levers refuses what cannot run (naming the option),
gradient checkpointing changes nothing but memory, autocast/scaler are no-ops on CPU, and the
DeepSpeed / FSDP / accelerate launch files say what the config says and load in those libraries."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch
import yaml

from graft.config import RunConfig, TrainConfig, apply_overrides
from graft.data.batching import flatten, pad
from graft.data.tokenize import Tokenized
from graft.errors import ConfigError
from graft.techniques import ApplyContext, get_technique
from graft.train import levers
from graft.train.distributed import (check_distributed, deepspeed_config, fsdp_config, layer_class_names,
                                     validate_deepspeed, write_launch_files)
from graft.train.levers import (NoScaler, apply_tf32, autocast, check_levers, check_trainable,
                                enable_gradient_checkpointing, grad_scaler)
from graft.train.loss import loss_sum
from graft.train.optim import build_optimizer
from testkit import IDS, llama

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a CUDA device object needs no GPU to be named


def _cfg(**overrides) -> RunConfig:
    raw = {"data": {"path": "data.json"}, "technique": {"name": "lora", "r": 4}}
    return RunConfig.from_dict(apply_overrides(raw, overrides))


def _applied(name: str, **options):
    tech = get_technique(name)
    return tech.apply(llama(), tech.parse(options), ApplyContext())


def _batch(packed: bool):
    items = [Tokenized(row.tolist(), row.tolist()) for row in IDS]
    return flatten(items) if packed else pad(items, 0)


# -- optimizers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["adamw", "adafactor", "adamw8bit", "paged_adamw8bit", "sgd"])
def test_each_optimizer_steps_the_trainable_params_only(name):
    model = _applied("lora", r=4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = build_optimizer(model, TrainConfig(optimizer=name, lr=1e-2, momentum=0.9 if name == "sgd" else 0.0))
    loss_sum(model, _batch(packed=True)).backward()
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert moved and moved <= trainable
    assert {n for n in trainable if "lora_B" in n} <= moved  # B gets the gradient while it is zero
    assert [g["weight_decay"] for g in opt.param_groups] == [0.0, 0.0]


def test_sgd_momentum_and_weight_decay_groups():
    model = _applied("full")
    opt = build_optimizer(model, TrainConfig(optimizer="sgd", momentum=0.9, weight_decay=0.1))
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])


def test_adafactor_uses_the_given_lr_not_its_own_schedule():
    opt = build_optimizer(_applied("full"), TrainConfig(optimizer="adafactor", lr=3e-3))
    group = opt.param_groups[0]
    assert (group["lr"], group["relative_step"], group["scale_parameter"], group["warmup_init"]) == (3e-3, False, False, False)


def test_adamw8bit_state_is_uint8():
    model = _applied("full")
    opt = build_optimizer(model, TrainConfig(optimizer="adamw8bit", lr=1e-3))
    loss_sum(model, _batch(packed=True)).backward()
    opt.step()
    big = [p for p in model.parameters() if p.numel() >= 4096]  # bitsandbytes' min_8bit_size
    assert big
    for p in big:
        assert opt.state[p]["state1"].dtype == torch.uint8 and opt.state[p]["state2"].dtype == torch.uint8
    small = next(p for p in model.parameters() if p.numel() < 4096)
    assert opt.state[small]["state1"].dtype == torch.float32  # too small to be worth quantising


def test_mezo_builds_with_the_decay_groups_and_no_state():
    from graft.train.mezo import MeZO

    opt = build_optimizer(_applied("lora", r=4), TrainConfig(optimizer="mezo", mezo_eps=1e-2, weight_decay=0.1))
    assert isinstance(opt, MeZO) and opt.eps == 1e-2
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0] and not opt.state


def test_8bit_optimizer_without_bitsandbytes_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes.optim", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"bitsandbytes>=0\.48"):
        build_optimizer(_applied("lora", r=4), TrainConfig(optimizer="adamw8bit"))
    monkeypatch.setattr(levers, "_has_bitsandbytes", lambda: False)
    with pytest.raises(ConfigError, match=r"train\.optimizer=adamw8bit needs bitsandbytes>=0\.48"):
        check_levers(_cfg(**{"train.optimizer": "adamw8bit"}), get_technique("lora"), CPU)


# -- check_levers -------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, device, option", [
    ({"train.precision": "bf16"}, CPU, "train.precision"),
    ({"train.precision": "fp16"}, CPU, "train.precision"),
    ({"model.dtype": "bfloat16"}, CPU, "model.dtype"),
    ({"model.dtype": "float16", "technique": {"name": "full"}}, CUDA, "model.dtype"),
    ({"train.optimizer": "paged_adamw8bit"}, CPU, "train.optimizer=paged_adamw8bit"),
    ({"distributed.strategy": "zero2", "distributed.offload": "cpu"}, CPU, "distributed.offload"),
    ({"distributed.strategy": "fsdp", "distributed.offload": "cpu"}, CPU, "distributed.offload"),
    ({"distributed.strategy": "zero3", "technique": {"name": "qlora"}}, CUDA, "distributed.strategy"),
    ({"distributed.strategy": "fsdp", "technique": {"name": "qlora"}}, CUDA, "distributed.strategy"),
    ({"distributed.strategy": "zero3", "distributed.offload": "nvme"}, CUDA, "distributed.nvme_path"),
    ({"distributed.strategy": "zero2", "distributed.offload": "nvme", "distributed.nvme_path": "/nvme"}, CUDA,
     "distributed.offload"),
    ({"distributed.strategy": "ddp", "distributed.offload": "cpu"}, CUDA, "distributed.offload"),
    ({"distributed.strategy": "zero2", "distributed.offload": "cpu", "train.optimizer": "adafactor"}, CUDA, "train.optimizer"),
    ({"distributed.strategy": "zero2", "train.optimizer": "mezo"}, CUDA, "train.optimizer=mezo"),
    ({"train.gradient_checkpointing": True, "technique": {"name": "prefix-tuning"}}, CPU, "train.gradient_checkpointing"),
])
def test_refusals_name_their_option(overrides, device, option):
    cfg = _cfg(**overrides)
    with pytest.raises(ConfigError) as e:
        check_levers(cfg, get_technique(cfg.technique.name), device)
    assert option in str(e.value)


def test_mezo_refuses_several_processes_and_zero_needs_deepspeed(monkeypatch):
    with pytest.raises(ConfigError, match="train.optimizer=mezo cannot run in 2 processes"):
        check_levers(_cfg(**{"train.optimizer": "mezo"}), get_technique("lora"), CPU, processes=2)
    assert check_levers(_cfg(**{"train.optimizer": "mezo"}), get_technique("lora"), CPU, processes=1) is not None
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    with pytest.raises(ConfigError, match="needs DeepSpeed") as e:
        check_levers(_cfg(**{"distributed.strategy": "zero2"}), get_technique("lora"), CPU)
    assert "ddp or fsdp" in e.value.hint


def test_paged_refusal_suggests_adamw8bit_and_cpu_precision_says_why():
    with pytest.raises(ConfigError) as e:
        check_levers(_cfg(**{"train.optimizer": "paged_adamw8bit"}), get_technique("lora"), CPU)
    assert "CUDA" in str(e.value) and "adamw8bit" in e.value.hint
    with pytest.raises(ConfigError) as e:
        check_levers(_cfg(**{"train.precision": "bf16"}), get_technique("lora"), CPU)
    assert "emulated" in e.value.hint and "fp32" in e.value.hint


@pytest.mark.parametrize("overrides, device, option", [
    ({"train.tf32": True}, CPU, "train.tf32"),
    ({"train.optimizer": "mezo", "train.gradient_checkpointing": True}, CPU, "train.gradient_checkpointing"),
    ({"train.momentum": 0.9}, CPU, "train.momentum"),
    ({"train.mezo_eps": 0.01}, CPU, "train.mezo_eps"),
    ({"distributed.nvme_path": "/nvme"}, CPU, "distributed.nvme_path"),
    ({"distributed.num_gpus": 4}, CPU, "distributed.num_gpus"),
    ({"model.dtype": "bfloat16", "technique": {"name": "full"}}, CUDA, "model.dtype=bfloat16"),
])
def test_allowed_but_notable_combinations_warn(overrides, device, option):
    cfg = _cfg(**overrides)
    warnings = check_levers(cfg, get_technique(cfg.technique.name), device)
    assert len(warnings) == 1 and option in warnings[0]


def test_defaults_and_allowed_combinations_pass_quietly():
    assert check_levers(_cfg(), get_technique("lora"), CPU) == []
    saved = RunConfig.from_dict(_cfg().model_dump(mode="json"))  # a resumed run's config names every option
    assert check_levers(saved, get_technique("lora"), CPU) == []
    for overrides in ({"train.optimizer": "mezo"}, {"train.optimizer": "adamw8bit"},
                      {"train.optimizer": "sgd", "train.momentum": 0.9},
                      {"train.gradient_checkpointing": True, "technique": {"name": "prompt-tuning"}},
                      {"train.precision": "fp16", "model.dtype": "float16"}):  # LoRA keeps fp32 adapters on an fp16 base
        cfg = _cfg(**overrides)
        device = CUDA if "train.precision" in overrides else CPU
        assert check_levers(cfg, get_technique(cfg.technique.name), device) == [], overrides


def test_zero2_with_qlora_is_allowed_by_the_config_check():
    cfg = _cfg(**{"distributed.strategy": "zero2", "distributed.num_gpus": 2, "technique": {"name": "qlora"}})
    assert check_distributed(cfg, get_technique("qlora")) == []


def test_float16_trainable_weights_are_refused_after_apply():
    check_trainable(_applied("full"), _cfg())
    with pytest.raises(ConfigError, match="float16"):
        check_trainable(_applied("full").half(), _cfg())


# -- gradient checkpointing ---------------------------------------------------------------------


def _wake_zero_adapters(model):
    """Zero-initialised trainable tensors (LoRA's B, say) would leave most gradients trivially zero."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad and not p.any():
                p.normal_(0, 0.1)
    return model


def _loss_and_grads(model, packed: bool, checkpointing: bool):
    if checkpointing:
        enable_gradient_checkpointing(model)
    model.train()
    saved = []
    torch.manual_seed(7)  # the same dropout masks in both runs
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t, lambda t: t):
        loss = loss_sum(model, _batch(packed))
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return loss.item(), grads, sum(saved)


@pytest.mark.parametrize("name, options, packed", [
    ("lora", {"r": 4, "dropout": 0.1}, True),
    ("full", {}, True),
    ("prompt-tuning", {"virtual_tokens": 4}, False),
    ("p-tuning", {"virtual_tokens": 4}, False),
    ("bottleneck", {"size": 8, "dropout": 0.1}, True),  # graft's own: forward hooks inside the layers
])
def test_checkpointing_gives_the_same_loss_and_grads_with_less_saved(name, options, packed):
    def model():
        m = _applied(name, **options)
        torch.manual_seed(3)
        return _wake_zero_adapters(m)

    loss, grads, saved = _loss_and_grads(model(), packed, checkpointing=False)
    loss_ck, grads_ck, saved_ck = _loss_and_grads(model(), packed, checkpointing=True)
    assert grads and set(grads) == set(grads_ck) and all(g is not None for g in grads_ck.values())
    assert loss_ck == pytest.approx(loss, abs=1e-6)
    for n in grads:
        torch.testing.assert_close(grads_ck[n], grads[n], atol=1e-6, rtol=0)
    assert saved_ck < saved / 2  # the layers' activations were not kept: checkpointing really is on


def test_checkpointing_on_a_4bit_qlora_base(tiny_model_dir):
    from graft.models import load_model

    tech = get_technique("qlora")
    if tech.missing():
        pytest.skip("qlora needs " + ", ".join(tech.missing()))
    options = tech.parse({"r": 4, "gradient_checkpointing": False})  # graft's lever, not the technique's own

    def model():
        torch.manual_seed(0)
        base, _ = load_model(str(tiny_model_dir), task="causal-lm", load_options=tech.load_options(options, "causal-lm"))
        return _wake_zero_adapters(tech.apply(base, options, ApplyContext()))

    loss, grads, saved = _loss_and_grads(model(), True, checkpointing=False)
    loss_ck, grads_ck, saved_ck = _loss_and_grads(model(), True, checkpointing=True)
    assert loss_ck == pytest.approx(loss, abs=1e-6) and saved_ck < saved / 2
    for n in grads:
        torch.testing.assert_close(grads_ck[n], grads[n], atol=1e-6, rtol=0)


def test_checkpointing_refuses_prefix_tuning():
    with pytest.raises(ConfigError, match="train.gradient_checkpointing"):
        enable_gradient_checkpointing(_applied("prefix-tuning", virtual_tokens=4))


# -- autocast, loss scaling, TF32 ---------------------------------------------------------------


def test_autocast_and_scaler_are_no_ops_on_cpu():
    for precision in ("fp32", "bf16", "fp16"):
        cfg = TrainConfig(precision=precision)
        with autocast(cfg, CPU):
            assert not torch.is_autocast_enabled("cpu")
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
        assert isinstance(grad_scaler(cfg, CPU), NoScaler)
    # the scaled loop equals the plain loop exactly
    results = []
    for scaled in (False, True):
        model = _applied("lora", r=4)
        opt = build_optimizer(model, TrainConfig(lr=1e-2))
        scaler = grad_scaler(TrainConfig(precision="fp16"), CPU)
        loss = loss_sum(model, _batch(packed=True))
        (scaler.scale(loss) if scaled else loss).backward()
        if scaled:
            scaler.unscale_(opt)
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        results.append([p.detach().clone() for p in model.parameters() if p.requires_grad])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_cuda_gets_real_autocast_and_an_fp16_scaler():
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else _nothing():
        ctx = autocast(TrainConfig(precision="bf16"), CUDA)
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else _nothing():
        assert isinstance(grad_scaler(TrainConfig(precision="fp16"), CUDA), torch.amp.GradScaler)
    assert isinstance(grad_scaler(TrainConfig(precision="bf16"), CUDA), NoScaler)  # bf16 has fp32's range


def test_tf32_leaves_cpu_matmuls_alone():
    before = torch.get_float32_matmul_precision()
    assert apply_tf32(TrainConfig(tf32=True)) is torch.cuda.is_available()
    if not torch.cuda.is_available():
        assert torch.get_float32_matmul_precision() == before


def _nothing():
    from contextlib import nullcontext

    return nullcontext()


# -- DeepSpeed / FSDP / accelerate files --------------------------------------------------------


@pytest.mark.parametrize("strategy, offload, stage",
                         [("zero1", "none", 1), ("zero2", "cpu", 2), ("zero3", "cpu", 3), ("zero3", "nvme", 3)])
def test_deepspeed_config_says_what_the_run_config_says(strategy, offload, stage):
    cfg = _cfg(**{"distributed.strategy": strategy, "distributed.offload": offload,
                  "distributed.nvme_path": "/nvme" if offload == "nvme" else None, "train.batch_size": 3,
                  "train.grad_accum": 5, "train.max_grad_norm": 0.5, "train.precision": "bf16", "train.lr": 1e-4})
    ds = deepspeed_config(cfg)
    zero = ds["zero_optimization"]
    assert zero["stage"] == stage
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["gradient_clipping"]) == (3, 5, 0.5)
    assert ds["bf16"]["enabled"] and not ds["fp16"]["enabled"]
    if offload == "none":
        assert "offload_optimizer" not in zero and "optimizer" not in ds
    else:
        assert zero["offload_optimizer"]["device"] == offload
        assert ("offload_param" in zero) == (stage == 3)  # only ZeRO-3 partitions (and so offloads) parameters
        assert ds["optimizer"]["type"] == "AdamW" and ds["optimizer"]["params"]["lr"] == 1e-4
    if offload == "nvme":
        assert zero["offload_optimizer"]["nvme_path"] == zero["offload_param"]["nvme_path"] == "/nvme"
    assert ("stage3_gather_16bit_weights_on_model_save" in zero) == (stage == 3)


def test_deepspeed_config_fp16_no_clipping_and_untested_optimizer():
    ds = deepspeed_config(_cfg(**{"distributed.strategy": "zero2", "train.precision": "fp16", "train.max_grad_norm": None,
                                  "train.optimizer": "adafactor"}))
    assert ds["fp16"] == {"enabled": True, "loss_scale": 0} and not ds["bf16"]["enabled"]
    assert ds["gradient_clipping"] == 0.0 and ds["zero_allow_untested_optimizer"] is True
    with pytest.raises(ConfigError, match="distributed.strategy"):
        deepspeed_config(_cfg(**{"distributed.strategy": "fsdp"}))


def test_fsdp_config():
    fs = fsdp_config(_cfg(**{"distributed.strategy": "fsdp", "distributed.offload": "cpu", "train.gradient_checkpointing": True}),
                     "LlamaDecoderLayer")
    assert fs["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    assert fs["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP" and fs["fsdp_reshard_after_forward"] is True
    assert fs["fsdp_offload_params"] is True and fs["fsdp_activation_checkpointing"] is True
    assert fsdp_config(_cfg(**{"distributed.strategy": "fsdp"}), "X")["fsdp_offload_params"] is False


@pytest.mark.parametrize("strategy, files, kind", [("zero3", ["deepspeed.json", "accelerate_config.yaml"], "DEEPSPEED"),
                                                   ("fsdp", ["accelerate_config.yaml"], "FSDP"),
                                                   ("ddp", ["accelerate_config.yaml"], "MULTI_GPU")])
def test_write_launch_files_writes_parseable_files(strategy, files, kind, tmp_path):
    cfg = _cfg(**{"distributed.strategy": strategy, "distributed.num_gpus": 4, "train.precision": "fp16"})
    paths = write_launch_files(cfg, tmp_path / "launch", "LlamaDecoderLayer")
    assert [p.name for p in paths] == files and all(p.is_file() for p in paths)
    acc = yaml.safe_load(paths[-1].read_text())
    assert (acc["distributed_type"], acc["num_processes"]) == (kind, 4)
    # DeepSpeed takes precision from its own file, accelerate refuses it twice
    assert acc.get("mixed_precision") == (None if strategy == "zero3" else "fp16")
    if strategy == "zero3":
        ds_file = acc["deepspeed_config"]["deepspeed_config_file"]
        assert json.loads(open(ds_file).read()) == deepspeed_config(cfg)
        assert acc["deepspeed_config"]["zero3_init_flag"] is True
    if strategy == "fsdp":
        assert acc["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "LlamaDecoderLayer"
    with pytest.raises(ConfigError, match="distributed.strategy=none"):
        write_launch_files(_cfg(), tmp_path / "none")


def _launch_env(path, monkeypatch):
    """What `accelerate launch --config_file PATH train.py` puts in the environment of each process."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    argv = ["--config_file", str(path), "train.py"]
    args, defaults, mp_from_file = _validate_launch_command(launch_command_parser().parse_args(argv))
    if args.use_deepspeed:  # as accelerate's launch_command does before its DeepSpeed launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_file else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
    env = prepare_deepspeed_cmd_env(args)[1] if args.use_deepspeed else prepare_multi_gpu_env(args)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return args


def test_accelerate_reads_the_fsdp_file_as_written(tmp_path, monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin

    cfg = _cfg(**{"distributed.strategy": "fsdp", "distributed.offload": "cpu", "distributed.num_gpus": 2,
                  "train.precision": "bf16"})
    args = _launch_env(write_launch_files(cfg, tmp_path, "LlamaDecoderLayer")[-1], monkeypatch)
    assert args.use_fsdp and args.num_processes == 2 and args.mixed_precision == "bf16"
    plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.transformer_cls_names_to_wrap == ["LlamaDecoderLayer"] and plugin.cpu_offload


def test_accelerate_and_deepspeed_read_the_zero_files_as_written(tmp_path, monkeypatch):
    pytest.importorskip("deepspeed")  # optional: accelerate's DeepSpeed launch needs it installed
    from accelerate.utils import DeepSpeedPlugin

    cfg = _cfg(**{"distributed.strategy": "zero3", "distributed.offload": "nvme", "distributed.nvme_path": str(tmp_path / "nvme"),
                  "distributed.num_gpus": 2, "train.grad_accum": 4, "train.precision": "bf16"})
    args = _launch_env(write_launch_files(cfg, tmp_path, None)[-1], monkeypatch)
    assert args.use_deepspeed and args.num_processes == 2
    plugin = DeepSpeedPlugin()
    plugin.set_mixed_precision("bf16")  # raises if the file's precision disagrees
    assert (plugin.zero_stage, plugin.gradient_accumulation_steps) == (3, 4)
    assert plugin.offload_optimizer_device == plugin.offload_param_device == "nvme"
    assert plugin.is_zero3_init_enabled()


def test_deepspeed_validation_rejects_a_bad_config_and_is_optional(monkeypatch):
    if importlib.util.find_spec("deepspeed") is not None:
        with pytest.raises(ConfigError, match="DeepSpeed rejects"):
            validate_deepspeed({"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3, "bogus": 1}})
        assert validate_deepspeed(deepspeed_config(_cfg(**{"distributed.strategy": "zero2"})))
    monkeypatch.setitem(sys.modules, "deepspeed.runtime.config", None)
    assert validate_deepspeed({"anything": 1}) is False  # not installed: skipped, not failed


def test_layer_class_is_read_from_the_model_config(tiny_model_dir):
    assert layer_class_names(_cfg(**{"model.name": str(tiny_model_dir)})) == "LlamaDecoderLayer"


def test_cli_writes_the_files_and_says_how_graft_launches_them_itself(tmp_path):
    from typer.testing import CliRunner

    from graft.cli.app import app

    run = tmp_path / "run.yaml"
    run.write_text(yaml.safe_dump({"data": {"path": "d.json"}, "distributed": {"strategy": "zero2", "num_gpus": 2}}))
    result = CliRunner().invoke(app, ["distributed", "config", "-c", str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "deepspeed.json").is_file() and (tmp_path / "out" / "accelerate_config.yaml").is_file()
    text = " ".join(result.output.split())
    assert "accelerate launch --config_file" in text and f"graft train -c {run} --nproc 2" in text
    bad = CliRunner().invoke(app, ["distributed", "config", "-c", str(run), "--set", "distributed.offload=nvme",
                                   "--set", "distributed.strategy=zero3"])
    assert isinstance(bad.exception, ConfigError) and "distributed.nvme_path" in str(bad.exception)
