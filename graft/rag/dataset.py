"""Fine-tuning data that teaches a model to answer from numbered sources and cite the right one.

Each question with a known answer and gold source becomes one chat row: the system and user
messages exactly as `graft rag ask` renders them (prompt_from_hits) over the k retrieved chunks, and the answer
followed by the gold chunk's number, "... [2]". When retrieval misses the gold chunk it is put in
at a random position (and counted), so every row has something correct to cite.

Pairs come from either
  * a JSONL file of {"question", "answer", "source"} rows (`contains` optional, as in `graft rag
    eval`), `source` naming the file or FILE#ROW record that holds the answer, or
  * a JSON/JSONL record collection indexed in the same knowledge base (Alpaca style: instruction
    and input are the question, output the answer), each record its own gold source FILE#ROW.

    rows = build_dataset(kb, read_pairs("qa.jsonl", kb), load_template(), tokenizer, k=3, holdout=50)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from graft.errors import DataError, DataRowError
from graft.progress import NullProgress, Progress
from graft.rag.answer import cited_numbers, prompt_from_hits
from graft.rag.evaluate import Question
from graft.rag.chunking import Chunk
from graft.rag.kb import Hit, KnowledgeBase
from graft.rag.readers import numbered_records
from graft.rag.template import RagTemplate

EMBED_BATCH = 256


@dataclass
class Pair:
    question: str
    answer: str
    source: str  # the gold source: a file, a suffix of one, or FILE#ROW
    file: str  # where the pair was read, for messages
    row: int
    contains: str | None = None

    def relevant(self, chunk) -> bool:
        return Question(self.question, self.source, self.contains).relevant(chunk)


@dataclass
class DatasetReport:
    pairs: int = 0  # pairs read
    train: int = 0
    heldout: int = 0
    gold_inserted: int = 0  # rows whose gold chunk retrieval missed, put in at a random position
    over_budget: int = 0  # rows skipped: the gold chunk fell outside the template's context budget
    too_long: int = 0  # rows skipped: longer than max_tokens
    duplicates: int = 0  # rows skipped: the question is already in the dataset
    gold_position: dict[int, int] = field(default_factory=dict)  # source number cited -> rows

    def to_dict(self) -> dict:
        return asdict(self)


# -- reading pairs -----------------------------------------------------------------------------------


def read_pairs(path: str | Path, kb: KnowledgeBase | None = None) -> list[Pair]:
    """The question/answer pairs in `path`; record rows need `kb` to know the file's source name."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file of question/answer pairs")
    rows = _rows(path)
    file_source = None
    pairs = []
    for n, row in rows:
        if not isinstance(row, dict):
            raise DataRowError(str(path), n, None, "expected an object with question, answer and source, or a "
                                                   "record with instruction and output")
        if "question" in row:
            q, a, s = (_text(row, key, path, n) for key in ("question", "answer", "source"))
            contains = row.get("contains")
            if contains is not None and (not isinstance(contains, str) or not contains.strip()):
                raise DataRowError(str(path), n, "contains", "must be a non-empty string when given")
            pairs.append(Pair(q, a, s, str(path), n, contains))
        elif "instruction" in row:
            instruction, answer = _text(row, "instruction", path, n), _text(row, "output", path, n)
            extra = row.get("input") or ""
            if not isinstance(extra, str):
                raise DataRowError(str(path), n, "input", "expected a string")
            if file_source is None:
                file_source = _indexed_as(path, kb)
            # the same join the alpaca format uses for instruction and input
            question = instruction + (f"\n\n{extra.strip()}" if extra.strip() else "")
            pairs.append(Pair(question, answer, f"{file_source}#{n}", str(path), n))
        else:
            raise DataRowError(str(path), n, None, f"expected question, answer and source (or a record with "
                                                   f"instruction and output); found keys {', '.join(sorted(row)) or 'none'}")
    if not pairs:
        raise DataError(f"{path}: no question/answer pairs")
    return pairs


def _rows(path: Path) -> list[tuple[int, object]]:
    """(row number, value), numbered as FILE#ROW sources are."""
    return numbered_records(path, path.read_text(encoding="utf-8-sig"))


def _text(row: dict, key: str, path: Path, n: int) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataRowError(str(path), n, key, "missing or empty" if value in (None, "") else "expected a string")
    return value.strip()


def _indexed_as(path: Path, kb: KnowledgeBase | None) -> str:
    """The name `kb` gives the file at `path` (records are cited as NAME#ROW)."""
    if kb is not None:
        target = str(path.resolve())
        for source, info in kb.meta["files"].items():
            if info.get("path") == target:
                return source
    name = kb.name if kb is not None else "the knowledge base"
    raise DataError(f"{path} holds records (instruction/output), but it is not indexed in {name}, so a record "
                    "cannot be its own source", hint=f"index it first: graft rag index {path} --name "
                                                     f"{kb.name if kb is not None else 'KB'}")


# -- building rows -----------------------------------------------------------------------------------


def build_dataset(kb: KnowledgeBase, pairs: Sequence[Pair], template: RagTemplate, tokenizer=None, k: int = 3,
                  holdout: int = 0, limit: int | None = None, max_tokens: int | None = None, seed: int = 0,
                  shuffle: bool = False, progress: Progress | None = None) -> tuple[list[dict], list[dict], DatasetReport]:
    """(train rows, held-out rows, report). Pairs are taken in a seeded random order; the first
    `holdout` usable ones are held out, then up to `limit` go to training. A question appears once.

    With `shuffle`, each prompt's sources come in random order rather than best first: when the gold
    source nearly always ranks first, that keeps the model from learning to cite [1] regardless.
    The held-out questions do not depend on `shuffle` (same seed, same questions)."""
    progress = progress or NullProgress()
    rng = random.Random(seed)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    report = DatasetReport(pairs=len(pairs))
    chunks, vectors = kb.chunks(), kb.vectors()
    chunk_rows = _chunk_rows(chunks)
    train, held, seen = [], [], set()
    wanted = holdout + (limit if limit is not None else len(pairs))
    progress.start("build", total=min(wanted, len(pairs)))
    for start in range(0, len(order), EMBED_BATCH):
        if len(train) + len(held) >= wanted:
            break
        batch = [pairs[i] for i in order[start:start + EMBED_BATCH]]
        for pair, vector in zip(batch, kb.embedder().encode([p.question for p in batch])):
            if len(train) + len(held) >= wanted:
                break
            key = " ".join(pair.question.lower().split())
            if key in seen:
                report.duplicates += 1
                continue
            row = _row(kb, pair, vector, template, tokenizer, k, rng, chunks, chunk_rows, vectors, report, shuffle)
            if row is None:
                continue
            if max_tokens is not None and _length(tokenizer, row["messages"]) > max_tokens:
                report.too_long += 1
                continue
            seen.add(key)
            (held if len(held) < holdout else train).append(row)
            gold = row["rag"]["gold"]
            report.gold_position[gold] = report.gold_position.get(gold, 0) + 1
            progress.advance("build")
    progress.finish("build")
    report.train, report.heldout = len(train), len(held)
    report.gold_position = dict(sorted(report.gold_position.items()))
    return train, held, report


def _chunk_rows(chunks: Sequence[Chunk]) -> dict[str, list[int]]:
    """Vector rows of each source's chunks: the candidates when the gold chunk must be put in."""
    rows: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        rows.setdefault(c.source, []).append(i)
    return rows


def _row(kb, pair: Pair, vector: np.ndarray, template: RagTemplate, tokenizer, k: int, rng: random.Random,
         chunks: Sequence[Chunk], chunk_rows: dict[str, list[int]], vectors: np.ndarray, report: DatasetReport,
         shuffle: bool = False) -> dict | None:
    hits = kb.search_vector(vector, k)
    gold = next((h for h in hits if pair.relevant(h.chunk)), None)
    inserted = gold is None
    if inserted:
        candidates = chunk_rows.get(pair.source) or [i for s, rows in chunk_rows.items()
                                                     if s.endswith("/" + pair.source) for i in rows]
        candidates = [i for i in candidates if pair.relevant(chunks[i])]
        if not candidates:
            raise DataRowError(pair.file, pair.row, "source", f"no chunk of knowledge base {kb.name} comes from "
                               f"{pair.source!r}" + (f" and contains {pair.contains!r}" if pair.contains else ""))
        best = max(candidates, key=lambda i: float(vectors[i] @ vector))
        gold = Hit(0, float(vectors[best] @ vector), chunks[best])
        hits = hits[:k - 1]
        hits.insert(rng.randint(0, len(hits)), gold)
        report.gold_inserted += 1
    if shuffle:
        rng.shuffle(hits)
    hits = [Hit(n, h.score, h.chunk) for n, h in enumerate(hits, 1)]  # citation numbers follow the order shown
    prompt = prompt_from_hits(pair.question, hits, template, tokenizer)
    number = next((h.n for h in prompt.sources if h.chunk.id == gold.chunk.id), None)
    if number is None:
        report.over_budget += 1
        return None
    return {"messages": prompt.messages + [{"role": "assistant", "content": cite(pair.answer, number)}],
            "rag": {"question": pair.question, "source": gold.chunk.source, "gold": number, "inserted": inserted,
                    "sources": len(prompt.sources), "file": pair.file, "row": pair.row}}


def cite(answer: str, number: int) -> str:
    """The answer with the citation appended: on the last line, after any final punctuation."""
    return f"{answer.rstrip()} [{number}]"


def _length(tokenizer, messages: list[dict]) -> int:
    if tokenizer is None:
        return sum(len(m["content"]) for m in messages) // 4
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(messages, tokenize=True)
        return len(ids["input_ids"] if hasattr(ids, "keys") else ids)  # newer transformers return an encoding
    return sum(len(tokenizer(m["content"], add_special_tokens=False)["input_ids"]) for m in messages)


def write_rows(path: str | Path, rows: Sequence[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def heldout_path(out: str | Path) -> Path:
    """Where the held-out rows go beside OUT: train.jsonl -> train.heldout.jsonl."""
    out = Path(out)
    return out.with_name(f"{out.stem}.heldout{out.suffix or '.jsonl'}")


# -- scoring answers ---------------------------------------------------------------------------------


def read_rows(path: str | Path) -> list[dict]:
    """Rows written by `write_rows` (each with its "rag" record)."""
    path = Path(path)
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row, dict) or "rag" not in row or "messages" not in row:
                raise DataRowError(str(path), n, "rag", "not a row of `graft rag dataset` (messages and rag)")
            out.append(row)
    return out


def score_citations(rows: Sequence[dict], answers: Sequence[str]) -> dict:
    """How often the answers cite the gold source, cite anything, and cite only the gold source."""
    gold = any_ = only = 0
    for row, text in zip(rows, answers):
        cited = cited_numbers(text, row["rag"]["sources"])
        gold += row["rag"]["gold"] in cited
        any_ += bool(cited)
        only += cited == [row["rag"]["gold"]]
    n = max(len(rows), 1)
    return {"questions": len(rows), "cites_gold": round(gold / n, 4), "cites_any": round(any_ / n, 4),
            "cites_only_gold": round(only / n, 4),
            "words": round(sum(len(a.split()) for a in answers) / n, 1)}


def generate_answers(target: str, rows: Sequence[dict], max_new_tokens: int = 128, batch_size: int = 8,
                     progress: Progress | None = None) -> list[str]:
    """Greedy answers of `target` (model, run or adapter folder) to the rows' prompts."""
    from graft.evaluate.generate import generate_batch
    from graft.inference import load_for_inference

    loaded = load_for_inference(target, merge=True).generative()
    return generate_batch(loaded.model, loaded.tokenizer, [r["messages"][:-1] for r in rows], max_new_tokens,
                          batch_size, progress)


def compare(targets: Sequence[str], heldout: str | Path, max_new_tokens: int = 128,
            on_result: Callable[[str, dict], None] | None = None) -> dict:
    """Score each target's citations on the held-out rows: {target: {scores, answers}}."""
    rows = read_rows(heldout)
    out = {}
    for target in targets:
        answers = generate_answers(target, rows, max_new_tokens)
        out[target] = {**score_citations(rows, answers), "answers": answers}
        if on_result:
            on_result(target, out[target])
    return out


def _main(argv: Sequence[str] | None = None) -> None:
    """python -m graft.rag.dataset HELDOUT.jsonl MODEL [MODEL ...] [--max-new-tokens N] [--json OUT]"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m graft.rag.dataset",
                                     description="Score base and tuned models' citations on held-out rows.")
    parser.add_argument("heldout")
    parser.add_argument("targets", nargs="+", help="models, run folders or adapter folders")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--json", help="write scores and answers here")
    args = parser.parse_args(argv)

    def show(target: str, result: dict) -> None:
        print(f"{target}: cites gold {result['cites_gold']:.0%}, cites any {result['cites_any']:.0%}, only gold "
              f"{result['cites_only_gold']:.0%}, {result['words']} words per answer", flush=True)

    result = compare(args.targets, args.heldout, args.max_new_tokens, show)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    _main()
