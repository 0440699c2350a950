"""DataConfig -> tokenized train and eval sets, validated before any training starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from graft.config import DataConfig
from graft.data.tokenize import TokenizedSet, tokenize_examples


@dataclass
class PreparedData:
    train: TokenizedSet
    eval: TokenizedSet | None
    eval_examples: list = field(default_factory=list)
    format: str = ""
    rows_read: int = 0
    skipped: list = field(default_factory=list)  # DataRowError per skipped row
    labels: list[str] | None = None  # class names, classification only

    def report(self) -> dict:
        return {
            "format": self.format,
            "rows_read": self.rows_read,
            "rows_skipped": len(self.skipped),
            "train_examples": len(self.train.items),
            "eval_examples": len(self.eval.items) if self.eval else 0,
            "train_tokens": self.train.tokens,
            "truncated": self.train.truncated + (self.eval.truncated if self.eval else 0),
            "dropped_after_truncation": self.train.dropped + (self.eval.dropped if self.eval else 0),
            **({"labels": self.labels} if self.labels else {}),
        }


def load_split(cfg: DataConfig, seed: int):
    """(LoadedData, train examples, eval examples): the deterministic split, or the eval file."""
    from graft.data.load import load_examples
    from graft.data.split import split_examples

    common = dict(format=cfg.format, skip_bad_rows=cfg.skip_bad_rows, system_prompt=cfg.system_prompt)
    loaded = load_examples(cfg.path, split=cfg.split, limit=cfg.limit, **common)
    if cfg.eval_path:
        held_out = load_examples(cfg.eval_path, **common)
        loaded.skipped += held_out.skipped
        return loaded, loaded.examples, held_out.examples
    train, held = split_examples(loaded.examples, cfg.eval_fraction, cfg.eval_size, seed)
    return loaded, train, held


def prepare_data(cfg: DataConfig, tokenizer, seed: int, task: str = "causal-lm") -> PreparedData:
    loaded, train_ex, eval_ex = load_split(cfg, seed)
    if task == "classification":
        from graft.data.classify import label_names, tokenize_classification

        labels = label_names(train_ex)
        train = tokenize_classification(train_ex, tokenizer, cfg.max_length, labels)
        evals = tokenize_classification(eval_ex, tokenizer, cfg.max_length, labels) if eval_ex else None
        return PreparedData(train, evals, eval_ex, loaded.format, loaded.rows_read, loaded.skipped, labels)
    train = tokenize_examples(train_ex, tokenizer, cfg.max_length, cfg.train_on)
    evals = tokenize_examples(eval_ex, tokenizer, cfg.max_length, cfg.train_on) if eval_ex else None
    return PreparedData(train, evals, eval_ex, loaded.format, loaded.rows_read, loaded.skipped)
