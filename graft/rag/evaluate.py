"""Retrieval quality on questions with known sources: recall@k and mean reciprocal rank.

A question file is JSONL, one `{"question": ..., "source": ..., "contains": ...}` per line.
`source` names the file (or FILE#ROW record) that answers it; a retrieved chunk is relevant when its
source is that, or ends with "/" + that (so a repo-relative path matches wherever it was indexed),
and, when `contains` is given, its text holds that phrase (case and spacing ignored): a label for one
passage of a long file rather than any chunk of it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graft.errors import DataError, DataRowError
from graft.progress import NullProgress, Progress
from graft.rag.chunking import Chunk
from graft.rag.kb import KnowledgeBase


@dataclass
class Question:
    question: str
    source: str
    contains: str | None = None

    def relevant(self, chunk: Chunk) -> bool:
        if chunk.source != self.source and not chunk.source.endswith("/" + self.source):
            return False
        return self.contains is None or _norm(self.contains) in _norm(chunk.text)


def read_questions(path: str | Path) -> list[Question]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such question file")
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataRowError(str(path), n, None, f"not JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise DataRowError(str(path), n, None, "expected an object with question and source")
        for key in ("question", "source"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataRowError(str(path), n, key, "missing or empty")
        contains = row.get("contains")
        if contains is not None and (not isinstance(contains, str) or not contains.strip()):
            raise DataRowError(str(path), n, "contains", "must be a non-empty string when given")
        out.append(Question(row["question"].strip(), row["source"].strip(), contains))
    if not out:
        raise DataError(f"{path}: no questions")
    return out


def evaluate_retrieval(kb: KnowledgeBase, questions: str | Path | Sequence[Question], ks: Sequence[int] = (1, 3, 5, 10),
                       progress: Progress | None = None) -> dict:
    """recall@k for each k (share of questions with a relevant chunk in the top k), MRR over the top
    max(ks), and each question's rank (None when not found)."""
    progress = progress or NullProgress()
    qs = read_questions(questions) if isinstance(questions, (str, Path)) else list(questions)
    depth = max(ks)
    vectors = kb.embedder().encode([q.question for q in qs])
    ranks: list[int | None] = []
    progress.start("retrieve", total=len(qs))
    for q, v in zip(qs, vectors):
        hits = kb.search_vector(v, depth)
        ranks.append(next((h.n for h in hits if q.relevant(h.chunk)), None))
        progress.advance("retrieve")
    progress.finish("retrieve")
    found = np.array([r if r is not None else np.inf for r in ranks], dtype=float)
    return {"questions": len(qs), "kb": kb.name, "index": kb.meta["index"], "embedder": kb.meta["embedder"],
            **{f"recall@{k}": round(float((found <= k).mean()), 4) for k in sorted(ks)},
            "mrr": round(float(np.where(np.isfinite(found), 1.0 / found, 0.0).mean()), 4),
            "per_question": [{"question": q.question, "source": q.source, "rank": r} for q, r in zip(qs, ranks)]}


def _norm(text: str) -> str:
    return " ".join(text.lower().split())
