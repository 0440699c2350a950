"""Hold out an evaluation set, the same way for the same seed on every machine."""

from __future__ import annotations

import random
from typing import TypeVar

from graft.errors import ConfigError, DataError

T = TypeVar("T")


def split_examples(
    examples: list[T], eval_fraction: float, eval_size: int | None, seed: int
) -> tuple[list[T], list[T]]:
    """Return ``(train, eval)``; both keep the original order of the examples.

    ``eval_size`` overrides ``eval_fraction``. A positive fraction holds out at least one
    example once there are two or more.
    """
    n = len(examples)
    if eval_size is not None:
        if eval_size < 0:
            raise ConfigError(f"eval_size must be 0 or more, got {eval_size}")
        n_eval = eval_size
    else:
        if not 0.0 <= eval_fraction < 1.0:
            raise ConfigError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
        n_eval = round(n * eval_fraction)
        if eval_fraction > 0 and n >= 2:
            n_eval = max(1, n_eval)
        n_eval = min(n_eval, n - 1) if n >= 2 else 0
    if n_eval == 0:
        return list(examples), []
    if n_eval >= n:
        raise DataError(
            f"holding out {n_eval} examples for evaluation leaves none to train on ({n} in all)",
            hint="lower eval_size, or give a separate eval file with eval_path",
        )
    # random.Random(int) does not depend on PYTHONHASHSEED, so the split is reproducible.
    held = set(random.Random(seed).sample(range(n), n_eval))
    train = [e for i, e in enumerate(examples) if i not in held]
    evals = [e for i, e in enumerate(examples) if i in held]
    return train, evals
