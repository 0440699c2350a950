"""The drift tests themselves on data whose answer is known."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist

from graft.monitor.stats import _unbiased_mmd2, length_test, mmd_test, vocabulary_test


def test_vectorised_mmd_matches_the_textbook_formula():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(1.0, size=(5, 3))
    k = np.exp(-cdist(np.concatenate([x, y]), np.concatenate([x, y]), "sqeuclidean") / 2)
    kxx, kyy, kxy = k[:7, :7], k[7:, 7:], k[:7, 7:]
    expected = ((kxx.sum() - np.trace(kxx)) / 42 + (kyy.sum() - np.trace(kyy)) / 20 - 2 * kxy.mean())
    np.fill_diagonal(k, 0.0)
    mask = np.zeros((1, 12))
    mask[0, :7] = 1
    assert np.isclose(_unbiased_mmd2(k, mask, 7, 5)[0], expected)


def test_mmd_p_value_separates_same_from_shifted():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    same = mmd_test(x, rng.normal(size=(40, 8)), permutations=300)
    shifted = mmd_test(x, rng.normal(0.8, size=(40, 8)), permutations=300)
    assert same["p_value"] > 0.05
    assert shifted["p_value"] == 1 / 301  # smaller than every permutation
    y = rng.normal(size=(40, 8))
    assert mmd_test(x, y, permutations=300, seed=3) == mmd_test(x, y, permutations=300, seed=3)


def test_length_and_vocabulary_shift():
    short = np.array([5, 6, 7, 5, 6] * 8)
    assert length_test(short, short + 20)["p_value"] < 1e-6
    assert length_test(short, short)["p_value"] == 1.0
    train = [f"what colour is the {t}" for t in ("apple", "sky", "grass", "snow")] * 10
    same = vocabulary_test(train, train[:20], permutations=200)
    other = vocabulary_test(train, ["shall I compare thee to a summer's day"] * 20, permutations=200)
    assert same["oov_rate"] == 0.0 and same["p_value"] > 0.05
    assert other["oov_rate"] > 0.9 and other["p_value"] < 0.01 and other["value"] > same["value"]
