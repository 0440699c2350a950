"""One process of a training run, and how its model is spread over the others.

`graft train --nproc N` starts N copies of the recipe through torchrun (graft/train/launch.py). Each
builds the same model and data, takes its share of every optimizer step's micro-batches, and lets
its strategy synchronise gradients: DDP (a full replica a process), FSDP2 (`fully_shard`: weights,
gradients and optimizer state sharded) or DeepSpeed ZeRO-1/2/3. Only rank 0 writes the run folder.
`Single` is the same interface for one process, so the recipe has one loop for all of them.
"""

from __future__ import annotations

import inspect
import os
import socket
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from graft.config import RunConfig
from graft.errors import ConfigError
from graft.train.distributed import ZERO_STAGE, deepspeed_config


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "World":
        """What torchrun says of this process (one process when it was not launched by torchrun)."""
        env = os.environ
        return cls(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)),
                   int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1))))


def strategy_name(cfg: RunConfig, world: World) -> str:
    """distributed.strategy, or ddp for several processes where none is named."""
    if cfg.distributed.strategy == "none" and world.size > 1:
        return "ddp"
    return cfg.distributed.strategy


def make_strategy(cfg: RunConfig, device: torch.device, world: World) -> "Single":
    """The strategy for this process; joins the process group when there is more than one process
    (or a sharding strategy asks for one, e.g. DeepSpeed ZeRO with offload on one GPU)."""
    name = strategy_name(cfg, world)
    if name == "none":
        return Single()
    _join(world, device, deepspeed=name in ZERO_STAGE)
    cls = {"ddp": DDP, "fsdp": FSDP}.get(name, DeepSpeed)
    return cls(world, device, cfg)


def _join(world: World, device: torch.device, deepspeed: bool) -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if "MASTER_ADDR" in os.environ:  # torchrun's environment says where the others are
        dist.init_process_group(backend)
    else:  # one process started without torchrun (a sharding strategy on one device)
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
        # DeepSpeed reads LOCAL_RANK from the environment; what is set here goes again at close()
        for key in ("RANK", "LOCAL_RANK"):
            if key not in os.environ:
                os.environ[key] = "0"
                _SET_ENV.append(key)
    if deepspeed:
        os.environ.setdefault("DS_ACCELERATOR", device.type)  # instead of DeepSpeed guessing, and warning that it did
        import deepspeed as ds

        ds.init_distributed(dist_backend=backend)  # DeepSpeed's comm layer over the torch group above


_SET_ENV: list[str] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Single:
    """One process: plain backward, clip and step."""

    name = "none"

    def __init__(self, world: World | None = None, device: torch.device | None = None, cfg: RunConfig | None = None):
        self.world = world or World()
        self.device, self.cfg = device, cfg

    # -- setup --
    def prepare(self, model, make_optimizer):
        """(the model to train, its torch optimizer); the model may come back wrapped."""
        return model, make_optimizer(model)

    def inner(self, model):
        """The model under any wrapper: what evaluation runs and techniques save."""
        return model

    # -- one optimizer step --
    def sync_grads(self, model, last: bool):
        """Context for one micro-batch's backward: gradients are synchronised on the last only."""
        return nullcontext()

    def backward(self, model, loss, scaler) -> None:
        scaler.scale(loss).backward()

    def step(self, model, optimizer, scaler, max_grad_norm: float | None) -> float:
        scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
        norm = clip(model.parameters(), max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        return norm

    def evaluate(self, model, items, **options) -> dict:
        """Scores over `items` (graft.train.loss.evaluate_items' options)."""
        from graft.train.loss import evaluate_items

        return evaluate_items(self.inner(model), items, **options)

    # -- collectives (no-ops for one process) --
    def all_sum(self, values: list[float]) -> list[float]:
        return values

    def broadcast(self, obj):
        return obj

    def gather(self, obj) -> list:
        return [obj]

    def barrier(self) -> None:
        pass

    # -- saving and resuming --
    @contextmanager
    def full_weights(self, model):
        """Within: the trained weights are whole on the rank that saves; yields whether this rank saves."""
        yield self.world.main

    def optimizer_state(self, model, optimizer, folder: Path) -> dict:
        """The optimizer's state for a checkpoint (collective for sharded strategies)."""
        return optimizer.state_dict()

    def load_optimizer_state(self, model, optimizer, state: dict, folder: Path) -> None:
        optimizer.load_state_dict(state)

    def close(self) -> None:
        pass


class Group(Single):
    """The collectives every multi-process strategy shares (torch.distributed over the run's processes)."""

    # FSDP and ZeRO-3: a forward needs every process (each holds a shard of the weights)
    shards_weights = False

    def evaluate(self, model, items, **options) -> dict:
        """Each process scores every N-th item and the sums are added up; where a forward needs every
        process, each scores all of them (the same forwards in the same order)."""
        from graft.train.loss import eval_scores, eval_sums

        if self.shards_weights:
            return super().evaluate(model, items, **options)
        mine = eval_sums(self.inner(model), items[self.world.rank::self.world.size], **options)
        total, count = self.all_sum([mine["total"], mine["count"]])
        parts = self.gather((mine["preds"], mine["gold"]))
        return eval_scores({"total": total, "count": count,
                            "preds": [p for preds, _ in parts for p in preds], "gold": [g for _, gold in parts for g in gold]})

    def all_sum(self, values: list[float]) -> list[float]:
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return t.tolist()

    def broadcast(self, obj):
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        import torch.distributed as dist

        out = [None] * self.world.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    @property
    def _comm_device(self):
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        while _SET_ENV:
            os.environ.pop(_SET_ENV.pop(), None)


class DDP(Group):
    """DistributedDataParallel: every process holds the whole model; gradients are all-reduced (averaged)."""

    name = "ddp"

    def prepare(self, model, make_optimizer):
        from torch.nn.parallel import DistributedDataParallel

        cuda = self.device.type == "cuda"
        # buffers (rotary tables) are identical on every rank: no broadcast in each forward
        sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                else {"broadcast_buffers": False})  # the older name (torch < 2.13)
        wrapped = DistributedDataParallel(model, device_ids=[self.device.index] if cuda else None, **sync)
        return wrapped, make_optimizer(model)

    def inner(self, model):
        return model.module

    def sync_grads(self, model, last: bool):
        return nullcontext() if last else model.no_sync()


class FSDP(Group):
    """FSDP2 (`fully_shard`): weights, gradients and optimizer state sharded over the processes, one
    unit per decoder layer. Per-parameter sharding lets frozen base weights and trainable adapter
    weights share a unit, which peft needs."""

    name = "fsdp"
    shards_weights = True

    def prepare(self, model, make_optimizer):
        from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard

        options = {"offload_policy": CPUOffloadPolicy()} if self.cfg.distributed.offload == "cpu" else {}
        for layer in decoder_layers(model):
            fully_shard(layer, **options)
        fully_shard(model, **options)
        return model, make_optimizer(model)

    def sync_grads(self, model, last: bool):
        model.set_requires_gradient_sync(last)
        return nullcontext()

    @contextmanager
    def full_weights(self, model):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        # every rank takes part in the gather; rank 0 gets whole tensors of what was trained
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True,
                                                                     ignore_frozen_params=True))
        if not self.world.main:
            yield False
            return
        sharded = model.state_dict

        def whole(*args, **kwargs):
            return {k: full.get(k, v) for k, v in sharded(*args, **kwargs).items()}

        model.state_dict = whole  # what technique.save reads (peft and transformers call state_dict())
        try:
            yield True
        finally:
            del model.state_dict

    def optimizer_state(self, model, optimizer, folder: Path) -> dict:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, model, optimizer, state: dict, folder: Path) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        # every rank read the same whole state from the checkpoint; each keeps its shard
        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


class DeepSpeed(Group):
    """DeepSpeed ZeRO stage 1 (optimizer state sharded), 2 (+ gradients) or 3 (+ weights), with
    optional offload of the sharded state to CPU. graft's own optimizer and schedule drive the step."""

    name = "deepspeed"

    def __init__(self, world, device, cfg):
        super().__init__(world, device, cfg)
        self.stage = ZERO_STAGE[cfg.distributed.strategy]
        self.shards_weights = self.stage == 3
        self.engine = None

    def prepare(self, model, make_optimizer):
        import deepspeed

        optimizer = make_optimizer(model)
        engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=runtime_config(self.cfg, self.world.size),
                                          dist_init_required=False)
        self.engine = engine
        return engine, optimizer

    def inner(self, model):
        return self.engine.module

    def sync_grads(self, model, last: bool):
        return nullcontext()  # the engine counts micro-batches itself (gradient_accumulation_steps)

    def backward(self, model, loss, scaler) -> None:
        # the loss is already the window's share: the engine must not divide by the accumulation again
        self.engine.backward(loss, scale_wrt_gas=False)
        if not self.engine.is_gradient_accumulation_boundary():
            self.engine.step()  # not a boundary: only advances the engine's micro-batch count

    def step(self, model, optimizer, scaler, max_grad_norm: float | None) -> float:
        self.engine.step()  # the boundary: reduce, clip (gradient_clipping), step, zero
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    @contextmanager
    def full_weights(self, model):
        if self.stage < 3:  # stages 1-2 keep whole weights on every rank
            yield self.world.main
            return
        import deepspeed

        trained = [p for p in self.engine.module.parameters() if p.requires_grad]
        with deepspeed.zero.GatheredParameters(trained, modifier_rank=None):
            yield self.world.main

    def optimizer_state(self, model, optimizer, folder: Path) -> dict:
        # each rank writes its own shard of the optimizer state, in DeepSpeed's format, into the checkpoint
        self.engine.save_checkpoint(str(folder / "deepspeed"), tag="state", save_latest=False,
                                    exclude_frozen_parameters=True)
        return {"deepspeed": "deepspeed/state"}

    def close(self) -> None:
        import gc

        import deepspeed.comm as ds_comm
        import torch.distributed as dist

        # DeepSpeed keeps its own references to the process groups (ZeRO makes some); left for the
        # interpreter's teardown, their gloo threads can abort the process as it exits
        self.engine = None
        if dist.is_initialized():
            ds_comm.destroy_process_group()
        gc.collect()
        super().close()

    def load_optimizer_state(self, model, optimizer, state: dict, folder: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(folder / "deepspeed"), tag="state", load_module_strict=False,
                                              load_lr_scheduler_states=False)
        if path is None:
            raise ConfigError(f"{folder}: no DeepSpeed optimizer state to resume from (was it saved with another strategy?)")


def runtime_config(cfg: RunConfig, world_size: int) -> dict:
    """The DeepSpeed config for this launch: the launch-file config with its "auto" values made concrete."""
    ds = deepspeed_config(cfg)
    ds["train_batch_size"] = cfg.train.batch_size * cfg.train.grad_accum * world_size
    ds.pop("optimizer", None)  # graft's optimizer steps the (offloaded) shards; its schedule drives the rate
    zero = ds["zero_optimization"]
    zero.update({k: v for k, v in {"reduce_bucket_size": 50_000_000, "stage3_prefetch_bucket_size": 50_000_000,
                                   "stage3_param_persistence_threshold": 100_000}.items() if k in zero})
    if "offload_optimizer" in zero:
        ds["zero_force_ds_cpu_optimizer"] = False
    ds["steps_per_print"] = 1 << 30  # graft reports progress itself
    return ds


def decoder_layers(model) -> list:
    """The model's repeated blocks (the classes it names in `_no_split_modules`), the units FSDP shards by."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ConfigError(f"distributed.strategy=fsdp: {type(base).__name__} names no repeated block class "
                          "(_no_split_modules) to shard by", hint="use distributed.strategy=ddp or zero2")
    return layers


def clip(params, max_norm: float | None) -> float:
    """Gradient norm over `params` (clipped to `max_norm` when given); sharded (DTensor) gradients included."""
    params = [p for p in params if p.grad is not None]
    if max_norm:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)
