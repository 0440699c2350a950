"""Retrieval quality of graft's RAG core on real documents, as JSON.

Builds a knowledge base (MiniLM embeddings, 800-character chunks, 120 overlap) from graft's own
README.md and docs/*.md, the first N records of shared/data/alpaca_5000 (each record a document,
`alpaca_5000.json#ROW`) and Tiny Shakespeare, then runs the question set in
benchmarks/rag/questions.jsonl through `graft.rag.evaluate_retrieval` for each FAISS index kind
(flat, hnsw, ivf: one embedding pass, the index rebuilt from the stored vectors for each kind).

Before anything is embedded every label is checked against the documents as graft reads them:
a question whose source is not in the corpus, or whose `contains` phrase is in no text of that
source, or is split across chunk boundaries everywhere it occurs, stops the run naming the line.

Printed (JSON): documents, chunks, index and embedding seconds, chunks/s, recall@1/3/5/10 and MRR
per index kind, the same per corpus part (graft docs, alpaca, shakespeare), and the missed questions.

    python benchmarks/rag_eval.py --out benchmarks/results/rag_eval.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUESTIONS = HERE / "rag" / "questions.jsonl"
PARTS = ("graft_docs", "alpaca", "shakespeare")


def part_of(source: str) -> str:
    if source.split("#")[0].endswith("alpaca_5000.json"):
        return "alpaca"
    if source.endswith("input.txt"):
        return "shakespeare"
    return "graft_docs"


class Timer:
    """A Progress that remembers how long each task ran (read, embed)."""

    def __init__(self):
        self.began, self.seconds = {}, {}

    def start(self, task, total=None, completed=0):
        self.began[task] = time.perf_counter()

    def advance(self, task, n=1, **fields):
        pass

    def log(self, message):
        pass

    def finish(self, task):
        self.seconds[task] = self.seconds.get(task, 0.0) + time.perf_counter() - self.began.pop(task)


def corpus_files(shared: Path, alpaca_limit: int, work: Path) -> list[Path]:
    alpaca = shared / "data" / "alpaca_5000" / "alpaca_5000.json"
    shakespeare = shared / "data" / "tinyshakespeare" / "input.txt"
    for f in (alpaca, shakespeare):
        if not f.is_file():
            sys.exit(f"error: {f} is missing (pass --shared, the folder holding data/)")
    if alpaca_limit:
        # the same file name, so questions' "alpaca_5000.json#ROW" sources still match
        records = json.loads(alpaca.read_text(encoding="utf-8"))[:alpaca_limit]
        alpaca = work / "alpaca_5000.json"
        alpaca.write_text(json.dumps(records), encoding="utf-8")
    return [Path("README.md"), *sorted(Path("docs").glob("*.md")), alpaca, shakespeare]


def check_labels(questions, docs, chunk_size: int, overlap: int) -> dict:
    """Every question's source is a document of the corpus and its phrase is in one of its chunks."""
    from graft.rag.chunking import Chunk, chunk_document

    by_source = {d.source: d for d in docs}
    errors, repeated = [], []
    chunks_of: dict[str, list] = {}
    for n, q in enumerate(questions, 1):
        matching = [d for s, d in by_source.items() if s == q.source or s.endswith("/" + q.source)]
        if not matching:
            errors.append(f"line {n}: source {q.source!r} is not in the corpus (an alpaca row past --alpaca-limit?)")
            continue
        if q.contains is None:
            continue
        # the core's own test (Question.relevant), on the whole text, then on the chunks graft will make
        if not any(q.relevant(Chunk(d.source, "", d.text, 0, len(d.text))) for d in matching):
            errors.append(f"line {n}: {q.contains!r} occurs in no text of {q.source}")
            continue
        for d in matching:
            if d.source not in chunks_of:
                chunks_of[d.source] = chunk_document(d, chunk_size, overlap)
        if not any(q.relevant(c) for d in matching for c in chunks_of[d.source]):
            errors.append(f"line {n}: {q.contains!r} is in {q.source} but split by chunk boundaries wherever it "
                          "occurs: shorten the phrase")
        in_text = sum(_norm(d.text).count(_norm(q.contains)) for d in matching)
        if in_text > 1:
            repeated.append({"line": n, "contains": q.contains, "occurrences": in_text})
    if errors:
        sys.exit("error: bad labels in the question set\n  " + "\n  ".join(errors))
    return {"checked": len(questions), "with_phrase": sum(q.contains is not None for q in questions),
            "phrase_occurs_more_than_once": repeated}


def where(chunk) -> str:
    """A hit, short: the file (name only when outside the repo) and its heading path or line."""
    name = chunk.source.rsplit("/", 1)[-1] if chunk.source.startswith("/") else chunk.source
    return f"{name} ({chunk.title})" if chunk.title else f"{name} line {chunk.line}" if chunk.line else name


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def scores(ranks: list, ks: tuple[int, ...]) -> dict:
    found = [r for r in ranks if r is not None]
    return {"n": len(ranks), **{f"recall@{k}": round(sum(r <= k for r in found) / len(ranks), 4) for k in ks},
            "mrr": round(sum(1 / r for r in found) / len(ranks), 4)}


def with_index(kb, kind: str, root: Path):
    """The same chunks and vectors under another index kind: a copy of the knowledge base, reindexed
    from its stored vectors (nothing re-embedded)."""
    from graft.rag import KnowledgeBase

    if kind == kb.meta["index"]:
        return kb
    name = f"{kb.name}-{kind}"
    shutil.copytree(kb.folder, root / name)
    copy = KnowledgeBase.open(name, root)
    copy.reindex(kind)
    return copy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--questions", type=Path, default=QUESTIONS)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                    help="the shared folder holding data/alpaca_5000 and data/tinyshakespeare (default: ../shared)")
    ap.add_argument("--alpaca-limit", type=int, default=1000,
                    help="index the first N Alpaca records (0: all 5,000, about 4 min more embedding on 2 cores)")
    ap.add_argument("--indexes", default="flat,hnsw,ivf", help="index kinds to compare, comma-separated")
    ap.add_argument("--ks", default="1,3,5,10")
    ap.add_argument("--chunk-size", type=int, default=800)
    ap.add_argument("--overlap", type=int, default=120)
    ap.add_argument("--embedder", default="minilm-l6")
    ap.add_argument("--root", type=Path, help="keep the knowledge bases here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, help="also write the JSON here (e.g. benchmarks/results/rag_eval.json)")
    args = ap.parse_args()

    import torch

    from graft.rag import KnowledgeBase, evaluate_retrieval, read_questions
    from graft.rag.readers import read_file, source_name

    ks = tuple(int(k) for k in args.ks.split(","))
    kinds = [k.strip() for k in args.indexes.split(",") if k.strip()]
    questions = read_questions(args.questions.resolve())
    shared = args.shared.resolve()
    out_file = args.out.resolve() if args.out else None
    root_arg = args.root.resolve() if args.root else None
    os.chdir(REPO)  # sources of the repo's files read "README.md", "docs/serve.md", as the questions name them
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = root_arg or tmp / "kbs"
        files = corpus_files(shared, args.alpaca_limit, tmp)
        docs = [d for f in files for d in read_file(f, source_name(f))]
        labels = check_labels(questions, docs, args.chunk_size, args.overlap)

        t0 = time.perf_counter()
        kb = KnowledgeBase.create("rag-eval", embedder=args.embedder, chunk_size=args.chunk_size,
                                  overlap=args.overlap, index=kinds[0], root=root)
        load_s = time.perf_counter() - t0
        timer = Timer()
        report = kb.add(files, progress=timer)
        if report.skipped:
            sys.exit(f"error: files skipped while indexing: {report.skipped}")
        info = kb.info()
        part_docs, part_chunks = defaultdict(int), defaultdict(int)
        for d in docs:
            part_docs[part_of(d.source)] += 1
        for source, f in kb.meta["files"].items():
            part_chunks[part_of(source)] += f["chunks"]

        by_index, by_part, misses, first = {}, {}, [], {}
        for kind in kinds:
            kbk = with_index(kb, kind, root)
            t = time.perf_counter()
            kbk.search_vector(kbk.embedder().encode(["warm-up"])[0], 1)  # builds (or loads) the index
            build_s = time.perf_counter() - t
            t = time.perf_counter()
            result = evaluate_retrieval(kbk, questions, ks=ks)
            eval_s = time.perf_counter() - t
            by_index[kind] = {**{k: result[k] for k in (*(f"recall@{k}" for k in ks), "mrr")},
                              "index_build_s": round(build_s, 2), "eval_s": round(eval_s, 2)}
            ranks = defaultdict(list)
            for row in result["per_question"]:
                ranks[part_of(row["source"])].append(row["rank"])
            by_part[kind] = {p: scores(ranks[p], ks) for p in PARTS if ranks[p]}
            if kind != kinds[0]:  # what the approximate index changed: questions ranked differently
                by_index[kind][f"ranks_changed_vs_{kinds[0]}"] = [
                    {"question": r["question"], "source": r["source"], kinds[0]: first[r["question"]], kind: r["rank"]}
                    for r in result["per_question"] if r["rank"] != first[r["question"]]]
            if kind == kinds[0]:  # what the misses found instead: the top 3 hits' sources and headings
                first = {r["question"]: r["rank"] for r in result["per_question"]}
                misses = [{"question": r["question"], "source": r["source"], "rank": r["rank"],
                           "top3": [where(h.chunk) for h in kbk.search(r["question"], 3)]}
                          for r in result["per_question"] if r["rank"] is None or r["rank"] > 5]

    embed_s = timer.seconds.get("embed", 0.0)
    out = {
        "corpus": {"documents": len(docs), "files": len(files), "chunks": info["chunks"],
                   "documents_by_part": dict(part_docs), "chunks_by_part": dict(part_chunks),
                   "alpaca_records": part_docs["alpaca"]},
        "settings": {"embedder": args.embedder, "chunk_size": args.chunk_size, "overlap": args.overlap,
                     "ks": list(ks), "threads": torch.get_num_threads()},
        "questions": {"n": len(questions),
                      "by_part": {p: sum(part_of(q.source) == p for q in questions) for p in PARTS},
                      "labels": labels},
        "embedder_load_s": round(load_s, 2),
        "index_s": report.seconds,
        "embed_s": round(embed_s, 2),
        "embed_chunks_per_s": round(report.chunks_embedded / embed_s, 1) if embed_s else None,
        "by_index": by_index,
        "recall@5_by_part": {kind: {p: v["recall@5"] for p, v in parts.items()} for kind, parts in by_part.items()
                             if 5 in ks},
        "by_part": by_part,
        f"misses_at_5_{kinds[0]}": misses,
    }
    text = json.dumps(out, indent=2, ensure_ascii=False)
    print(text)
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
