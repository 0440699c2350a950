"""graft: graft a pretrained language model onto your domain.

The Python API; the `graft` CLI is a thin layer over these calls::

    import graft
    cfg = graft.RunConfig.from_dict({"data": {"path": "orders.json"}, "train": {"max_steps": 40}})
    run = graft.train(cfg)
    print(graft.evaluate(run.run_dir, compare_base=True)["tuned"]["exact_match"])
    print(graft.chat(run.run_dir, "Extract the order: ..."))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graft.config import RunConfig
from graft.errors import GraftError

__version__ = "0.1.0"
__all__ = ["GraftError", "RunConfig", "chat", "evaluate", "load_dataset", "load_model", "train"]


def load_model(name: str, dtype: str = "float32", trust_remote_code: bool = False, task: str | None = None):
    """(model, tokenizer) for a catalog name, local folder, .gguf file or Hub id."""
    from graft.models import load_model as _load

    return _load(name, dtype=dtype, trust_remote_code=trust_remote_code, task=task)


def load_dataset(path: str, format: str = "auto", skip_bad_rows: bool = False, limit: int | None = None):
    """Read and validate a dataset; returns LoadedData (examples, format, skipped rows)."""
    from graft.data.load import load_examples

    return load_examples(path, format=format, skip_bad_rows=skip_bad_rows, limit=limit)


def train(config: RunConfig | dict[str, Any] | str | Path, progress=None, resume_dir: str | Path | None = None):
    """Run a fine-tune; returns TrainResult(run_dir, summary). `config` may be a YAML path or a dict."""
    from graft.train.recipe import train as _train

    if isinstance(config, dict):
        config = RunConfig.from_dict(config)
    elif not isinstance(config, RunConfig):
        config = RunConfig.load(config)
    return _train(config, progress, resume_dir)


def evaluate(target: str | Path, data: str | None = None, compare_base: bool = False, limit: int | None = 100, **kwargs):
    """Perplexity and exact match for a run, adapter or model (and its base with compare_base)."""
    from graft.evaluate import evaluate as _evaluate

    return _evaluate(target, data=data, compare_base=compare_base, limit=limit, **kwargs)


def chat(target: str | Path, prompt: str, max_new_tokens: int = 256, system: str | None = None) -> str:
    """One greedy reply from a run, adapter or model."""
    from graft.inference import load_for_inference, stream_reply

    loaded = load_for_inference(target, merge=True).generative()
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return "".join(stream_reply(loaded.model, loaded.tokenizer, messages, max_new_tokens)).strip()
