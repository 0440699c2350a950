"""FAISS indexes over unit vectors, searched by inner product (= cosine similarity).

`flat` is exact and the default; `ivf` (k-means cells, a quarter of them searched) and `hnsw` (a
graph) trade a little recall for speed on large collections. All are rebuilt from the stored
vectors when the collection changes, which keeps every kind simple to update (HNSW cannot delete).
"""

from __future__ import annotations

import numpy as np

from graft.errors import ConfigError

KINDS = ("flat", "ivf", "hnsw")


def faiss():
    try:
        import faiss as lib
    except ImportError as e:
        raise ConfigError("retrieval needs FAISS, which is not installed", hint="pip install 'graft[rag]'") from e
    return lib


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    return kind


def build(vectors: np.ndarray, kind: str = "flat", dim: int | None = None):
    """An index holding `vectors` (rows in order: a hit's id is its row)."""
    lib = faiss()
    d = vectors.shape[1] if vectors.size else int(dim or 0)
    n = len(vectors)
    if kind == "ivf" and n >= 64:
        cells = max(1, min(int(np.sqrt(n)), n // 39))  # FAISS wants ~39 training points per cell
        index = lib.IndexIVFFlat(lib.IndexFlatIP(d), d, cells, lib.METRIC_INNER_PRODUCT)
        index.train(vectors)
        # a quarter of the cells, at least 8: fewer lost exact top-10 hits on a few thousand vectors
        index.nprobe = min(cells, max(8, cells // 4))
    elif kind == "hnsw":
        index = lib.IndexHNSWFlat(d, 32, lib.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 64
    else:  # flat, and ivf while too few vectors to train cells
        index = lib.IndexFlatIP(d)
    if n:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def search(index, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(row, score) of the k best rows for one query vector, best first."""
    if index.ntotal == 0 or k <= 0:
        return []
    scores, rows = index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), min(k, index.ntotal))
    return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]


def save(index, path) -> None:
    faiss().write_index(index, str(path))


def load(path):
    return faiss().read_index(str(path))
