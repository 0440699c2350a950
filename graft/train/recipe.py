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
from graft.train.checkpoint import load_checkpoint, save_checkpoint
from graft.train.levers import apply_tf32, autocast, check_levers, check_trainable, enable_gradient_checkpointing, grad_scaler
from graft.train.loss import evaluate_items, make_batch, perplexity
from graft.train.memory_check import estimate_memory
from graft.train.optim import build_optimizer, build_scheduler
from graft.train.step import backprop_step, mezo_step
from graft.train.run_folder import RunFolder


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict


def train(cfg: RunConfig, progress: Progress | None = None, resume_dir: str | Path | None = None,
          on_eval: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Fine-tune as `cfg` says. With `resume_dir`, continue that run from its latest checkpoint.

    `on_eval(step, scores)` sees every evaluation during training; raising StopTraining from it ends
    the run there (status "stopped"), as a tuner does to prune a trial.
    """
    progress = progress or NullProgress()
    technique = get_technique(cfg.technique.name)
    options = cfg.technique.options
    technique.check_available()  # before minutes of loading, not after
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    lever_warnings = check_levers(cfg, technique, device)
    torch.set_num_threads(cfg.train.threads or os.cpu_count() or 1)
    _seed_everything(cfg.train.seed)

    if not resume_dir:
        RunFolder.check_new(cfg)
    # Model and data are checked before the run folder exists: a bad row leaves nothing behind.
    source = resolve(cfg.model.name, revision=cfg.model.revision)
    task = resolve_task(cfg, ensure_folder(source, progress))
    if not technique.supports(task):
        raise ConfigError(f"technique '{technique.name}' does not support {task} models (it supports {', '.join(sorted(technique.kinds))})")
    packed = technique.packs(task)
    if cfg.data.packing and not packed:
        raise ConfigError(f"data.packing: {technique.name} on {task} needs one example a row; turn packing off")
    tokenizer = load_tokenizer(source, cfg.model.trust_remote_code)
    data = prepare_data(cfg.data, tokenizer, cfg.train.seed, task)
    # Refuse a run that cannot fit before the weights load (not after minutes of it).
    estimate = estimate_memory(cfg, source.folder, technique, options, task, data.train.items, packed)
    model, _ = load_model(source, cfg.model.dtype, cfg.model.trust_remote_code, task=task, labels=data.labels,
                          load_options=technique.load_options(options, task), tokenizer=tokenizer, progress=progress)

    folder = RunFolder.open(resume_dir) if resume_dir else RunFolder.create(cfg)
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
    total_steps = cfg.train.max_steps or max(1, math.ceil(cfg.train.epochs * batches_per_epoch / cfg.train.grad_accum))

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

    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, total_steps)
    scaler = grad_scaler(cfg.train, device)

    def save_weights(path: Path) -> None:
        save_trained(technique, model, path, options, task, data.labels, cfg.model.name)

    state = {"step": 0, "tokens": 0, "target_tokens": 0, "elapsed_s": 0.0}
    if resume_dir:
        latest = folder.latest_checkpoint()
        if latest is None:
            raise RunError(f"{folder.path} has no complete checkpoint to resume from")
        state = load_checkpoint(latest[1], lambda p: technique.restore(model, p), technique.weights_file, optimizer,
                                scheduler, scaler)
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
    folder.write_summary(summary)

    def run_eval(step: int, during: bool = True) -> dict:
        scores = _log_eval(folder, model, data.eval, cfg, step, progress, packed, pad_id)
        if on_eval is not None and during:  # not the final one: the run has finished by then
            on_eval(step, scores)
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
            step_batches = [micro(state["step"] * cfg.train.grad_accum + k) for k in range(cfg.train.grad_accum)]
            n_targets = sum(len(b.targets) for b in step_batches)
            if mezo:
                step_loss, grad_norm = mezo_step(model, step_batches, technique, optimizer)
            else:
                step_loss, grad_norm = backprop_step(model, step_batches, technique, optimizer, scaler,
                                                     lambda: autocast(cfg.train, device), cfg.train.max_grad_norm)
            lr = scheduler.get_last_lr()[0]  # the rate this step used, before the schedule moves on
            scheduler.step()
            if technique.on_step is not None:
                technique.on_step(model, state["step"] + 1)
            optimizer.zero_grad(set_to_none=True)

            dt = time.perf_counter() - t0
            tokens = sum(b.tokens for b in step_batches)
            state["step"] += 1
            state["tokens"] += tokens
            state["target_tokens"] += n_targets
            state["elapsed_s"] += dt
            last_loss = step_loss
            if state["step"] % cfg.train.log_every == 0 or state["step"] == total_steps:
                folder.append_metrics({
                    "type": "train", "step": state["step"], "epoch": round(state["step"] * cfg.train.grad_accum / batches_per_epoch, 4),
                    "loss": step_loss, "lr": lr, "grad_norm": grad_norm,
                    "tokens": state["tokens"], "tokens_per_s": tokens / dt, "elapsed_s": round(state["elapsed_s"], 3),
                })
            progress.advance("train", 1, loss=step_loss, tokens_per_s=tokens / dt)
            if cfg.train.eval_every and data.eval and state["step"] % cfg.train.eval_every == 0:
                last_eval = (state["step"], run_eval(state["step"]))
                model.train()
            if cfg.checkpoint.every and state["step"] % cfg.checkpoint.every == 0 and state["step"] < total_steps:
                save_checkpoint(folder.checkpoint_path(state["step"]), save_weights, optimizer, scheduler, state, scaler)
                folder.prune_checkpoints(cfg.checkpoint.keep_last)
    except StopTraining as e:
        summary["memory"] = _memory_record(estimate, peak)
        _finish(folder, summary, state, "stopped", last_loss, reason=str(e))
        say(f"stopped at step {state['step']}: {e}")
        raise
    except KeyboardInterrupt:
        save_checkpoint(folder.checkpoint_path(state["step"]), save_weights, optimizer, scheduler, state, scaler)
        summary["memory"] = _memory_record(estimate, peak)
        _finish(folder, summary, state, "interrupted", last_loss)
        say(f"interrupted at step {state['step']}; checkpoint saved, continue with --resume")
        raise
    except Exception as e:
        summary["memory"] = _memory_record(estimate, peak)
        _finish(folder, summary, state, "failed", last_loss, error=f"{type(e).__name__}: {e}")
        say(f"failed at step {state['step']}: {type(e).__name__}: {e}")
        raise
    finally:
        progress.finish("train")

    summary["memory"] = _memory_record(estimate, peak)
    say(f"memory: peak {fmt_bytes(summary['memory']['measured_peak_bytes'])} measured, "
        f"{fmt_bytes(estimate.total_bytes)} estimated")
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


def _log_eval(folder: RunFolder, model, evalset, cfg: RunConfig, step: int, progress: Progress,
              packed: bool, pad_id: int) -> dict:
    scores = evaluate_items(model, evalset.items, cfg.train.batch_size, progress, packed, pad_id)
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
