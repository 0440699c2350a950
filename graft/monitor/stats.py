"""Two-sample tests for drift: MMD with a permutation test, KS on lengths, word-distribution shift.

Each test returns a plain dict (statistic, p-value, what it compared) so reports stay JSON.
Permutation p-values are (1 + #{permuted >= observed}) / (1 + permutations): never 0, and exact
under the null whatever the sample sizes.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from scipy import sparse
from scipy.spatial.distance import jensenshannon, pdist, squareform
from scipy.stats import ks_2samp

from graft.progress import NullProgress, Progress

CHUNK = 128  # permutations per matrix product: bounds memory at CHUNK x (n + m) floats


def _perm_masks(rng: np.random.Generator, n_total: int, n_x: int, count: int) -> np.ndarray:
    """[count, n_total] 0/1 rows, each marking a random n_x of the pooled items as the first sample."""
    ranks = rng.random((count, n_total)).argsort(axis=1)
    masks = np.zeros((count, n_total))
    np.put_along_axis(masks, ranks[:, :n_x], 1.0, axis=1)
    return masks


def _p_value(observed: float, permuted: np.ndarray) -> float:
    return float((1 + np.sum(permuted >= observed)) / (1 + len(permuted)))


def _unbiased_mmd2(k: np.ndarray, masks: np.ndarray, n: int, m: int) -> np.ndarray:
    """Unbiased MMD² for each mask row; `k` is the pooled kernel matrix with a zero diagonal."""
    row_sums = k.sum(axis=1)
    total = row_sums.sum()
    within_x = np.einsum("pi,ip->p", masks, k @ masks.T)  # s^T K s
    x_to_all = masks @ row_sums  # s^T K 1
    within_y = total - 2 * x_to_all + within_x
    between = x_to_all - within_x
    return within_x / (n * (n - 1)) + within_y / (m * (m - 1)) - 2 * between / (n * m)


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = 1000, seed: int = 0,
             progress: Progress | None = None) -> dict:
    """MMD² between samples x [n, d] and y [m, d] with an RBF kernel, bandwidth by the median heuristic."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("the MMD test needs at least two items per sample")
    progress = progress or NullProgress()
    d2 = pdist(np.concatenate([x, y]).astype(np.float64), "sqeuclidean")  # each pair once
    # median heuristic: σ = the median distance between pooled items; k = exp(-d² / 2σ²)
    bandwidth = float(np.sqrt(np.median(d2))) or 1.0
    k = squareform(np.exp(-d2 / (2 * bandwidth**2)))  # a zero diagonal, as the unbiased estimate wants
    first = np.zeros((1, n + m))
    first[0, :n] = 1.0
    observed = float(_unbiased_mmd2(k, first, n, m)[0])
    rng = np.random.default_rng(seed)
    permuted = []
    progress.start("permutations", total=permutations)
    for start in range(0, permutations, CHUNK):
        count = min(CHUNK, permutations - start)
        permuted.append(_unbiased_mmd2(k, _perm_masks(rng, n + m, n, count), n, m))
        progress.advance("permutations", count)
    progress.finish("permutations")
    return {"statistic": "mmd2", "value": observed, "p_value": _p_value(observed, np.concatenate(permuted)),
            "bandwidth": bandwidth, "permutations": permutations}


def length_test(x_lengths: np.ndarray, y_lengths: np.ndarray) -> dict:
    """Two-sample Kolmogorov-Smirnov on lengths; reports both medians so the direction is visible."""
    result = ks_2samp(x_lengths, y_lengths)
    return {"statistic": "ks", "value": float(result.statistic), "p_value": float(result.pvalue),
            "train_median": float(np.median(x_lengths)), "served_median": float(np.median(y_lengths))}


WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def _oov(vocabulary: set[str], tokenized: list[list[str]]) -> float:
    """Share of the word occurrences in `tokenized` texts that are not in `vocabulary`."""
    counts = Counter(w for ws in tokenized for w in ws)
    total = sum(counts.values())
    return sum(c for w, c in counts.items() if w not in vocabulary) / total if total else 0.0


def vocabulary_test(x_texts: list[str], y_texts: list[str], permutations: int = 1000, seed: int = 0) -> dict:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of the word distributions, with a permutation
    p-value over whole texts (a small sample has a high divergence by chance alone); the OOV rate of
    y's words against x's vocabulary, beside the rate a same-sized slice of x has against the rest."""
    tokens = [words(t) for t in x_texts + y_texts]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(w for ws in tokens for w in ws))}
    rows = [r for r, ws in enumerate(tokens) for _ in ws]
    cols = [vocab[w] for ws in tokens for w in ws]
    n, m = len(x_texts), len(y_texts)
    counts = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n + m, max(len(vocab), 1)))
    first = np.zeros((1, n + m))
    first[0, :n] = 1.0
    observed = float(_jsd(counts, first)[0])
    rng = np.random.default_rng(seed)
    permuted = np.concatenate([_jsd(counts, _perm_masks(rng, n + m, n, min(CHUNK, permutations - s)))
                               for s in range(0, permutations, CHUNK)])
    # baseline: how many unseen words in-distribution text of the served sample's size brings
    order = rng.permutation(n)
    held, kept = order[:min(m, n // 2)], order[min(m, n // 2):]
    train_vocab = {w for ws in tokens[:n] for w in ws}
    return {"statistic": "js_divergence", "value": observed, "p_value": _p_value(observed, permuted),
            "permutations": permutations, "oov_rate": _oov(train_vocab, tokens[n:]),
            "baseline_oov_rate": _oov({w for i in kept for w in tokens[i]}, [tokens[i] for i in held]),
            "train_vocabulary": len(train_vocab)}


def _jsd(counts: sparse.csr_matrix, masks: np.ndarray) -> np.ndarray:
    """JS divergence between the word counts of the rows each mask marks and of the rest."""
    x = np.asarray(counts.T @ masks.T).T
    y = np.asarray(counts.sum(axis=0)) - x
    with np.errstate(invalid="ignore", divide="ignore"):
        out = jensenshannon(x, y, axis=1, base=2) ** 2
    return np.nan_to_num(out)
