"""split_examples: deterministic, sizes, and never an empty train set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from graft.data import split_examples
from graft.errors import DataError


def test_same_seed_same_split_and_order_kept():
    items = list(range(100))
    train, evals = split_examples(items, 0.1, None, seed=7)
    assert (train, evals) == split_examples(items, 0.1, None, seed=7)
    assert len(evals) == 10 and len(train) == 90
    assert sorted(train + evals) == items and evals == sorted(evals) and train == sorted(train)
    assert split_examples(items, 0.1, None, seed=8)[1] != evals


def test_split_does_not_depend_on_hash_seed():
    code = ("from graft.data import split_examples;"
            "print(split_examples([str(i) for i in range(50)], 0.2, None, 3)[1])")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": s}).stdout for s in ("1", "2")}
    assert len(outs) == 1


def test_eval_size_overrides_fraction():
    train, evals = split_examples(list(range(20)), 0.5, 3, seed=0)
    assert (len(train), len(evals)) == (17, 3)


@pytest.mark.parametrize("n, fraction, expected_eval", [(2, 0.01, 1), (10, 0.05, 1), (1000, 0.05, 50),
                                                        (1, 0.5, 0), (10, 0.0, 0), (3, 0.9, 2)])
def test_fraction_sizes(n, fraction, expected_eval):
    train, evals = split_examples(list(range(n)), fraction, None, seed=1)
    assert len(evals) == expected_eval and len(train) == n - expected_eval


def test_eval_size_zero_means_no_eval():
    assert split_examples([1, 2, 3], 0.5, 0, seed=0) == ([1, 2, 3], [])


def test_eval_size_that_empties_train_raises():
    with pytest.raises(DataError, match="leaves none to train on"):
        split_examples([1, 2, 3], 0.0, 3, seed=0)
