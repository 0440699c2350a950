"""Evaluate a run or a model: perplexity on held-out data, exact match from greedy answers.

With `compare_base`, the same numbers for the base model come from the same loaded weights with
the adapter switched off, so both sides see identical data and settings.
"""

from __future__ import annotations

from pathlib import Path

from graft.data.classify import tokenize_classification
from graft.data.tokenize import tokenize_examples
from graft.errors import ConfigError
from graft.evaluate.generate import generate_batch
from graft.evaluate.metrics import exact_match
from graft.evaluate.perplexity import evaluate_perplexity
from graft.inference import Loaded, load_for_inference
from graft.progress import NullProgress, Progress
from graft.train.loss import evaluate_items


def held_out_examples(loaded: Loaded, data: str | None, fmt: str = "auto", skip_bad_rows: bool = False,
                      limit: int | None = None):
    """Rows of `data`, or the run's own eval split when no data is given."""
    from graft.data.load import load_examples
    from graft.data.prepare import load_split
    from graft.train.run_folder import RunFolder

    if data:
        return load_examples(data, format=fmt, skip_bad_rows=skip_bad_rows, limit=limit).examples
    if loaded.run_dir is None:
        raise ConfigError("no data to evaluate on: pass --data FILE (a plain model has no eval split)")
    cfg = RunFolder.open(loaded.run_dir).load_config()
    _, _, held = load_split(cfg.data, cfg.train.seed)
    if not held:
        raise ConfigError(f"run {loaded.run_dir} held out no eval rows; pass --data FILE")
    return held[:limit] if limit else held


def score(model, tokenizer, examples, max_length: int = 1024, max_new_tokens: int | None = None,
          batch_size: int = 8, samples: int = 3, progress: Progress | None = None, packed: bool = True,
          labels: list[str] | None = None) -> dict:
    """Perplexity over every example; exact match over chat examples whose last turn is the answer.

    With `labels` (a classifier's classes): loss, accuracy and F1 instead.
    """
    progress = progress or NullProgress()
    result: dict = {"examples": len(examples)}
    pad_id = tokenizer.pad_token_id or 0
    if labels:
        items = tokenize_classification(examples, tokenizer, max_length, labels).items
        result.update(evaluate_items(model, items, batch_size, progress, packed=False, pad_id=pad_id))
        return result
    items = tokenize_examples(examples, tokenizer, max_length).items
    result.update(evaluate_perplexity(model, items, batch_size, progress, packed, pad_id))

    qa = [e for e in examples if e.kind == "chat" and e.messages[-1]["role"] == "assistant"]
    if qa:
        refs = [e.messages[-1]["content"] for e in qa]
        budget = max_new_tokens or min(512, max(len(tokenizer(r)["input_ids"]) for r in refs) + 16)
        preds = generate_batch(model, tokenizer, [e.messages[:-1] for e in qa], budget, batch_size * 2, progress)
        hits = [exact_match(p, r) for p, r in zip(preds, refs)]
        result["exact_match"] = 100.0 * sum(hits) / len(hits)
        result["answered"] = len(hits)
        result["samples"] = [
            {"row": e.row, "prompt": e.messages[-2]["content"], "reference": r, "prediction": p, "match": h}
            for e, r, p, h in list(zip(qa, refs, preds, hits))[:samples]
        ]
    return result


def evaluate(target: str | Path, data: str | None = None, fmt: str = "auto", limit: int | None = 100,
             compare_base: bool = False, max_new_tokens: int | None = None, batch_size: int = 8,
             skip_bad_rows: bool = False, progress: Progress | None = None, loaded: Loaded | None = None) -> dict:
    """Score `target` (run folder, adapter folder or model) and, if asked, its base model alongside."""
    loaded = loaded or load_for_inference(target, progress)
    if compare_base and not loaded.has_adapter:
        raise ConfigError(f"--compare-base needs a run or adapter; {target} is a plain model")
    examples = held_out_examples(loaded, data, fmt, skip_bad_rows, limit)
    args = dict(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress, labels=loaded.labels)
    out: dict = {"target": str(target), "base_model": loaded.base}
    if not loaded.has_adapter:
        out["model"] = score(loaded.model, loaded.tokenizer, examples, **args)
        return out
    if compare_base:
        out["base"] = _score_base(loaded, examples, args)
    # Generation through unmerged LoRA layers is several times slower on CPU; merge while scoring.
    merge = loaded.mergeable and hasattr(loaded.model, "merge_adapter")
    if merge:
        loaded.model.merge_adapter()
    try:
        out["tuned"] = score(loaded.model, loaded.tokenizer, examples, packed=loaded.packed, **args)
    finally:
        if merge:
            loaded.model.unmerge_adapter()
    return out


def _score_base(loaded: Loaded, examples, args: dict) -> dict:
    """The base model's scores: the adapter switched off (peft), or the base loaded on its own."""
    if loaded.labels:
        raise ConfigError("--compare-base is not meaningful for a classifier: the base model has no trained head")
    if hasattr(loaded.model, "disable_adapter"):
        with loaded.model.disable_adapter():
            return score(loaded.model, loaded.tokenizer, examples, **args)
    from graft.models import load_model

    base, tokenizer = load_model(loaded.base, task="causal-lm")
    return score(base, tokenizer, examples, **args)
