"""The training recipe, top to bottom: config -> model + data -> technique -> loop -> run folder.

Reports through the Progress interface; knows nothing of terminals or HTTP. A failed or
interrupted run keeps its checkpoints, metrics and log, and says how it ended in summary.json.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from graft.config import RunConfig
from graft.data.batching import group
from graft.data.prepare import prepare_data
from graft.errors import ConfigError, RunError, StopTraining
from graft.models import load_model, load_tokenizer, model_task, resolve
from graft.memory.measure import PeakMemory
from graft.memory.result import fmt_bytes
from graft.models.load import ensure_folder
from graft.progress import NullProgress, Progress
from graft.techniques import ApplyContext, count_parameters, get_technique
from graft.techniques.saved import head_modules, save_trained
from graft.train.attention import use_packed_attention
from graft.train.checkpoint import load_trainer_state, restore_weights, save_checkpoint
from graft.train.levers import apply_tf32, autocast, check_levers, check_trainable, enable_gradient_checkpointing, grad_scaler
from graft.train.loss import make_batch, perplexity
from graft.train.memory_check import estimate_memory
from graft.train.optim import build_optimizer, build_scheduler
from graft.train.parallel import Single, World, make_strategy, strategy_name
from graft.train.step import backprop_step, mezo_step
from graft.train.run_folder import RunFolder


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict


def train(cfg: RunConfig, progress: Progress | None = None, resume_dir: str | Path | None = None,
          on_eval: Callable[[int, int, dict], None] | None = None) -> TrainResult:
    """Fine-tune as `cfg` says. With `resume_dir`, continue that run from its latest checkpoint.

    `on_eval(step, total_steps, scores)` sees every evaluation during training; raising StopTraining
    from it ends the run there (status "stopped"), as a tuner does to prune a trial.

    Under torchrun (`graft train --nproc N`) every process calls this; each trains its share of
    every step (graft/train/parallel.py) and only rank 0 writes the run folder.
    """
    world = World.from_env()
    technique = get_technique(cfg.technique.name)
    technique.check_available()  # before minutes of loading, not after
    device = torch.device("cuda", world.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    lever_warnings = check_levers(cfg, technique, device, world.size)
    if world.size > 1:  # the run config records what ran; the memory estimate divides sharded state by it
        cfg = cfg.model_copy(update={"distributed": cfg.distributed.model_copy(
            update={"num_gpus": world.size, "strategy": strategy_name(cfg, world)})})
    strategy = make_strategy(cfg, device, world)
    try:
        return _train(cfg, technique, device, strategy, lever_warnings,
                      progress if world.main and progress else NullProgress(), resume_dir, on_eval)
    finally:
        strategy.close()


def _train(cfg: RunConfig, technique, device, strategy: Single, lever_warnings: list[str], progress: Progress,
           resume_dir, on_eval) -> TrainResult:
    world, main = strategy.world, strategy.world.main
    options = cfg.technique.options
    # processes on one machine share its cores
    torch.set_num_threads(cfg.train.threads or max(1, (os.cpu_count() or 1) // world.local_size))
    _seed_everything(cfg.train.seed)

    if not resume_dir and main:
        RunFolder.check_new(cfg)
    # Model and data are checked before the run folder exists: a bad row leaves nothing behind.
    source = resolve(cfg.model.name, revision=cfg.model.revision)
    if not main:
        strategy.barrier()  # rank 0 converts a GGUF file first: the others would race it into the same folder
    task = resolve_task(cfg, ensure_folder(source, progress))
    if main:
        strategy.barrier()
    if not technique.supports(task):
        raise ConfigError(f"technique '{technique.name}' does not support {task} models (it supports {', '.join(sorted(technique.kinds))})")
    packed = technique.packs(task)
    if cfg.data.packing and not packed:
        raise ConfigError(f"data.packing: {technique.name} on {task} needs one example a row; turn packing off")
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    data = prepare_data(cfg.data, tokenizer, cfg.train.seed, task)
    # Refuse a run that cannot fit before the weights load (not after minutes of it).
    estimate = estimate_memory(cfg, source.folder, technique, options, task, data.train.items, packed, world.local_size)
    model, _ = load_model(source, cfg.model.dtype, cfg.model.trust_remote_code, task=task, labels=data.labels,
                          load_options=technique.load_options(options, task), tokenizer=tokenizer, progress=progress)

    if main:
        folder = RunFolder.open(resume_dir) if resume_dir else RunFolder.create(cfg)
    path = strategy.broadcast(str(folder.path) if main else None)
    if not main:
        folder = RunFolder.follower(path)
    say = _logger(folder, progress)
    say(f"run folder {folder.path}")
    report = data.report()
    say("data: " + ", ".join(f"{k}={v}" for k, v in report.items()))
    for err in data.skipped[:20]:
        say(f"skipped {err}")
    for warning in lever_warnings:
        say(f"warning: {warning}")
    say(f"memory estimate: {fmt_bytes(estimate.total_bytes)} of {estimate.device.describe()}")

    lengths = [len(t.input_ids) for t in data.train.items]
    batches_per_epoch = len(group(len(lengths), lengths, cfg.train.batch_size, cfg.data.max_length, cfg.data.packing, cfg.train.seed, 0))
    per_step = cfg.train.grad_accum * world.size  # micro-batches an optimizer step takes, over all processes
    total_steps = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * batches_per_epoch / per_step))

    head = head_modules(model) if task == "classification" else ()
    ctx = ApplyContext(kind=task, total_steps=total_steps, model_path=source.folder, head=head)
    model = technique.apply(model, options, ctx)
    if not getattr(model, "is_loaded_in_4bit", False) and not getattr(model, "is_loaded_in_8bit", False):
        model.to(device)  # bitsandbytes places quantized models itself and refuses .to()
    check_trainable(model, cfg)
    if packed:
        use_packed_attention(model)
    mezo = cfg.train.optimizer == "mezo"
    if cfg.train.gradient_checkpointing and not mezo:  # MeZO has no backward to recompute for
        enable_gradient_checkpointing(model)
    apply_tf32(cfg.train)
    trainable, total_params = count_parameters(model)
    if trainable == 0:
        raise ConfigError(f"technique '{technique.name}' left nothing trainable in this model (check its target modules)")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    latest = folder.latest_checkpoint() if resume_dir else None
    if resume_dir and latest is None:
        raise RunError(f"{folder.path} has no complete checkpoint to resume from")
    if latest:  # into the plain model, before a strategy shards or wraps it
        restore_weights(latest[1], lambda p: technique.restore(model, p), technique.weights_file)
    model, optimizer = strategy.prepare(model, lambda m: build_optimizer(m, cfg.train))
    inner = strategy.inner(model)
    scheduler = build_scheduler(optimizer, cfg.train, total_steps)
    scaler = grad_scaler(cfg.train, device)

    def save_weights(path: Path) -> None:
        save_trained(technique, inner, path, options, task, data.labels, cfg.model.name)

    def checkpoint() -> None:
        save_checkpoint(folder.checkpoint_path(state["step"]), save_weights, optimizer, scheduler, state, scaler,
                        model, strategy)

    state = {"step": 0, "tokens": 0, "target_tokens": 0, "elapsed_s": 0.0}
    if latest:
        state = load_trainer_state(latest[1], optimizer, scheduler, scaler, model, strategy)
        folder.truncate_metrics(after_step=state["step"])
        say(f"resumed from {latest[1].name} (step {state['step']} of {total_steps})")

    micro = _micro_batches(data.train.items, lengths, cfg, packed, pad_id)
    summary = {
        "status": "running",
        "task": task,
        "model": source.describe(),
        "technique": cfg.technique.name,
        "technique_options": options.model_dump(mode="json"),
        "trainable_params": trainable,
        "total_params": total_params,
        "trainable_percent": round(100 * trainable / total_params, 4),
        "total_steps": total_steps,
        "batches_per_epoch": batches_per_epoch,
        "data": report,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if world.size > 1 or strategy.name != "none":
        summary["distributed"] = {"strategy": cfg.distributed.strategy,
                                  "processes": world.size, "global_batch": cfg.train.batch_size * per_step}
    folder.write_summary(summary)

    def run_eval(step: int, during: bool = True) -> dict:
        # every rank takes part (its share of the items, or all of them for sharded weights); rank 0 logs
        scores = _log_eval(folder, strategy, model, data.eval, cfg, step, progress, packed, pad_id)
        if on_eval is not None and during:  # not the final one: the run has finished by then
            on_eval(step, total_steps, scores)
        return scores

    if cfg.train.eval_every and data.eval and state["step"] == 0:
        summary.update({f"{k}_start": v for k, v in run_eval(0, during=False).items()})
    progress.start("train", total=total_steps, completed=state["step"])
    last_loss, last_eval, window_start = None, None, time.perf_counter()
    peak = PeakMemory(device)  # the training window only: loading and conversion peaks are not the run's
    peak.start()
    try:
        model.train()
        while state["step"] < total_steps:
            t0 = time.perf_counter()
            # this process's share of the step: micro-batches rank*A .. rank*A + A-1 of the step's window
            first = state["step"] * per_step + world.rank * cfg.train.grad_accum
            step_batches = [micro(first + k) for k in range(cfg.train.grad_accum)]
            n_targets, tokens = sum(len(b.targets) for b in step_batches), sum(b.tokens for b in step_batches)
            if world.size > 1:
                n_targets, tokens = (int(v) for v in strategy.all_sum([n_targets, tokens]))
            if mezo:
                step_loss, grad_norm = mezo_step(model, step_batches, technique, optimizer)
            else:
                step_loss, grad_norm = backprop_step(model, step_batches, technique, optimizer, scaler,
                                                     lambda: autocast(cfg.train, device), cfg.train.max_grad_norm,
                                                     strategy, n_targets)
                if world.size > 1:
                    step_loss = strategy.all_sum([step_loss])[0]
            lr = scheduler.get_last_lr()[0]  # the rate this step used, before the schedule moves on
            scheduler.step()
            if technique.on_step is not None:
                technique.on_step(model, state["step"] + 1)
            optimizer.zero_grad(set_to_none=True)

            dt = time.perf_counter() - t0
            state["step"] += 1
            state["tokens"] += tokens
            state["target_tokens"] += n_targets
            state["elapsed_s"] += dt
            last_loss = step_loss
            if state["step"] % cfg.train.log_every == 0 or state["step"] == total_steps:
                folder.append_metrics({
                    "type": "train", "step": state["step"], "epoch": round(state["step"] * per_step / batches_per_epoch, 4),
                    "loss": step_loss, "lr": lr, "grad_norm": grad_norm,
                    "tokens": state["tokens"], "tokens_per_s": tokens / dt, "elapsed_s": round(state["elapsed_s"], 3),
                })
            progress.advance("train", 1, loss=step_loss, tokens_per_s=tokens / dt)
            if cfg.train.eval_every and data.eval and state["step"] % cfg.train.eval_every == 0:
                last_eval = (state["step"], run_eval(state["step"]))
                model.train()
            if cfg.checkpoint.every and state["step"] % cfg.checkpoint.every == 0 and state["step"] < total_steps:
                checkpoint()
                folder.prune_checkpoints(cfg.checkpoint.keep_last)
    except StopTraining as e:
        summary["memory"] = _memory_record(estimate, peak)
        _finish(folder, summary, state, "stopped", last_loss, reason=str(e))
        say(f"stopped at step {state['step']}: {e}")
        raise
    except KeyboardInterrupt:
        summary["memory"] = _memory_record(estimate, peak)
        if world.size == 1:
            checkpoint()
            say(f"interrupted at step {state['step']}; checkpoint saved, continue with --resume")
        else:  # the ranks stopped at different points: a collective save could not line up
            say(f"interrupted at step {state['step']}; --resume continues from the last periodic checkpoint")
        _finish(folder, summary, state, "interrupted", last_loss)
        raise
    except Exception as e:
        summary["memory"] = _memory_record(estimate, peak)
        _finish(folder, summary, state, "failed", last_loss, error=f"{type(e).__name__}: {e}")
        say(f"failed at step {state['step']}: {type(e).__name__}: {e}")
        raise
    finally:
        progress.finish("train")

    summary["memory"] = _memory_record(estimate, peak)
    if world.size > 1:  # each process's own peak: sharding shows here
        summary["memory"]["per_rank_peak_bytes"] = strategy.gather(summary["memory"]["measured_peak_bytes"])
    say(f"memory: peak {fmt_bytes(summary['memory']['measured_peak_bytes'])} measured, "
        f"{fmt_bytes(estimate.total_bytes)} estimated")
    with strategy.full_weights(model) as saves:
        if saves:
            save_weights(folder.adapter)
            tokenizer.save_pretrained(folder.adapter)
    if data.eval:
        fresh = last_eval is not None and last_eval[0] == state["step"]
        summary.update(last_eval[1] if fresh else run_eval(state["step"], during=False))
    _finish(folder, summary, state, "completed", last_loss, wall_s=time.perf_counter() - window_start)
    say(f"done: adapter in {folder.adapter}")
    return TrainResult(folder.path, summary)


def resolve_task(cfg: RunConfig, model_folder: Path) -> str:
    """The task `auto` stands for: classification for encoders or labelled data, else causal-lm."""
    if cfg.task != "auto":
        return cfg.task
    if model_task(model_folder) == "encoder" or cfg.data.format == "classification":
        return "classification"
    return "causal-lm"


def _micro_batches(items, lengths, cfg: RunConfig, packed: bool = True, pad_id: int = 0):
    """batch(i) -> the i-th micro-batch of the whole run, a pure function of i (so a resume sees the same data).

    Epochs are walked by their own lengths: with packing, each epoch's shuffle can give a different count.
    """
    epochs: list[list[list[int]]] = []

    def batch(i: int):
        epoch = 0
        while True:
            if epoch == len(epochs):
                epochs.append(group(len(items), lengths, cfg.train.batch_size, cfg.data.max_length, cfg.data.packing, cfg.train.seed, epoch))
            if i < len(epochs[epoch]):
                return make_batch([items[j] for j in epochs[epoch][i]], packed, pad_id)
            i -= len(epochs[epoch])
            epoch += 1

    return batch


def _log_eval(folder: RunFolder, strategy: Single, model, evalset, cfg: RunConfig, step: int, progress: Progress,
              packed: bool, pad_id: int) -> dict:
    scores = strategy.evaluate(model, evalset.items, batch_size=cfg.train.batch_size, progress=progress,
                               packed=packed, pad_id=pad_id)
    loss = scores.pop("loss")
    if "accuracy" in scores:  # classification: accuracy and F1 mean more than a perplexity
        result = {"eval_loss": loss, **{f"eval_{k}": v for k, v in scores.items()}}
        shown = f"accuracy {scores['accuracy']:.1f}%, macro F1 {scores['f1_macro']:.1f}"
    else:
        result = {"eval_loss": loss, "eval_ppl": perplexity(loss)}
        shown = f"perplexity {result['eval_ppl']:.2f}"
    folder.append_metrics({"type": "eval", "step": step, **result})
    progress.log(f"step {step}: eval loss {loss:.4f}, {shown}")
    return result


def _memory_record(estimate, peak: PeakMemory) -> dict:
    """Estimate next to measurement, for summary.json (the estimate's terms included)."""
    if not peak.peak_bytes:
        peak.stop()
    return {"estimated_bytes": estimate.total_bytes, "measured_peak_bytes": peak.peak_bytes,
            "error": round((estimate.total_bytes - peak.peak_bytes) / max(peak.peak_bytes, 1), 4),
            "measured": peak.to_dict(), "estimate": estimate.to_dict()}


def _finish(folder, summary, state, status, last_loss, **extra) -> None:
    metrics = [r for r in folder.read_metrics() if r.get("type") == "train"]
    first = [r["loss"] for r in metrics[:10]]
    last = [r["loss"] for r in metrics[-10:]]
    summary.update({
        "status": status,
        "steps": state["step"],
        "tokens": state["tokens"],
        "target_tokens": state["target_tokens"],
        "train_time_s": round(state["elapsed_s"], 2),
        "tokens_per_s": round(state["tokens"] / state["elapsed_s"], 1) if state["elapsed_s"] else None,
        "first_loss": first[0] if first else None,
        "final_loss": last_loss,
        "loss_first10_mean": sum(first) / len(first) if first else None,
        "loss_last10_mean": sum(last) / len(last) if last else None,
        **extra,
    })
    folder.write_summary(summary)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _logger(folder: RunFolder, progress: Progress):
    def say(message: str) -> None:
        folder.log(message)
        progress.log(message)

    return say
