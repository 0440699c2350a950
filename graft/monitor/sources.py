"""The two samples drift detection compares: the prompts a run trained on and the prompts it served."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import numpy as np

from graft.data.example import Example
from graft.errors import DataError
from graft.monitor.requests import RequestLog
from graft.train.run_folder import RunFolder

MIN_PROMPTS = 20  # below this neither the permutation test nor the KS test can say much


class TooFewPromptsError(DataError):
    """Too few prompts on one side of a drift test."""


def prompts_of(example: Example) -> list[str]:
    """What a served prompt corresponds to: each user turn of a chat (Alpaca's instruction + input),
    the text itself for text and classification rows."""
    if example.messages is None:
        return [example.text or ""]
    return [m["content"] for m in example.messages if m.get("role") == "user"]


def training_prompts(run_dir: str | Path, max_rows: int, seed: int = 0) -> tuple[list[str], int]:
    """(a seeded sample of at most max_rows user prompts from the run's training split, how many there were)."""
    from graft.data.prepare import load_split

    cfg = RunFolder.open(run_dir).load_config()
    try:
        _, train, _ = load_split(cfg.data, cfg.train.seed)
    except DataError as e:
        e.hint = e.hint or (f"the run's config.yaml names data.path {cfg.data.path!r}; run from the folder it "
                            "was trained in, or fix the path there")
        raise
    prompts = [p for ex in train for p in prompts_of(ex) if p.strip()]
    _check(len(prompts), f"training prompts in {cfg.data.path}")
    return _sample(prompts, max_rows, seed), len(prompts)


def served_keys(run_dir: str | Path) -> list[str]:
    """The `adapter` values a server may have written for this run: the run folder or its adapter
    folder, absolute (what the log promises) or relative to here (a server started in this folder)."""
    folder = RunFolder.open(run_dir)
    keys = []
    for path in (folder.path, folder.adapter):
        absolute = path.resolve()
        keys += [str(absolute), str(path), os.path.relpath(absolute)]
    return list(dict.fromkeys(keys))


def served_prompts(run_dir: str | Path, log: RequestLog, model_id: str | None = None,
                   since: datetime | None = None, max_rows: int = 2000, seed: int = 0) -> tuple[list[str], int]:
    """(a seeded sample of at most max_rows prompts served by this run, or under `model_id` when given;
    how many there were). `since` keeps only requests from then on."""
    if model_id is not None:
        prompts, what = log.prompts(model=model_id, since=since), f"model id {model_id!r}"
    else:
        keys = served_keys(run_dir)
        prompts = [p for key in keys for p in log.prompts(adapter=key, since=since)]
        what = f"adapter {keys[0]} (or its adapter/ folder, or either relative to here)"
    prompts = [p for p in prompts if p.strip()]
    _check(len(prompts), f"served prompts logged for {what} in {log.engine.url.render_as_string()}",
           hint="serve more requests first, point --db at the server's database, or pass --model ID")
    return _sample(prompts, max_rows, seed), len(prompts)


def _check(count: int, what: str, hint: str | None = None) -> None:
    if count < MIN_PROMPTS:
        raise TooFewPromptsError(f"only {count} {what}; drift detection needs at least {MIN_PROMPTS}", hint=hint)


def _sample(items: list[str], k: int, seed: int) -> list[str]:
    if len(items) <= k:
        return items
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=k, replace=False))
    return [items[i] for i in keep]
