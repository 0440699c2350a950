"""`graft rag dataset`: rows that answer from numbered sources and cite the gold one."""

from __future__ import annotations

import json
import re

import pytest
from testkit import run_graft

from graft.errors import DataError, DataRowError
from graft.rag import KnowledgeBase, build_prompt, load_template
from graft.rag.dataset import build_dataset, heldout_path, read_pairs, score_citations

DOCS = {
    "pumps.txt": "The water pump must be oiled every week, or its bearings wear out.",
    "garden.txt": "Tomatoes need full sun and deep watering twice a week in summer.",
    "bread.txt": "Sourdough bread rises slowly overnight in a cool kitchen.",
    "bikes.txt": "Bicycle tyres should be pumped to the pressure printed on their side.",
    "tea.txt": "Green tea tastes bitter when brewed with boiling water; use water at 80 degrees.",
}
PAIRS = [
    ("How often should the water pump be oiled?", "Every week.", "pumps.txt"),
    ("What do tomatoes need?", "Full sun and deep watering.", "garden.txt"),
    ("Where does sourdough rise?", "Overnight in a cool kitchen.", "bread.txt"),
    ("How hard should I pump my bicycle tyres?", "To the pressure printed on their side.", "bikes.txt"),
    ("Why is my green tea bitter?", "The water was too hot; use 80 degrees.", "tea.txt"),
]


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    home = tmp_path_factory.mktemp("rag_dataset")
    docs = home / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    kb = KnowledgeBase.create("kb", root=home / "kbs")
    kb.add([docs])
    return kb


def _pairs_file(path, pairs):
    path.write_text("".join(json.dumps({"question": q, "answer": a, "source": s}) + "\n" for q, a, s in pairs))
    return path


def _shown_sources(row) -> dict[int, str]:
    """Citation number -> source name, as the user message shows them."""
    return {int(n): s for n, s in re.findall(r"^\[(\d+)\] (\S+)", row["messages"][-2]["content"], re.M)}


def test_rows_cite_the_gold_sources_number_in_the_prompt(kb, tmp_path):
    template = load_template()
    pairs = read_pairs(_pairs_file(tmp_path / "qa.jsonl", PAIRS), kb)
    train, held, report = build_dataset(kb, pairs, template, k=3)
    assert not held and report.train == len(train) == len(PAIRS) and report.gold_inserted == 0
    for row in train:
        gold = row["rag"]["gold"]
        assert _shown_sources(row)[gold] == row["rag"]["source"]
        pair = next(p for p in pairs if p.question == row["rag"]["question"])
        assert row["rag"]["source"].endswith("/" + pair.source)
        assert row["messages"][-1] == {"role": "assistant", "content": f"{pair.answer} [{gold}]"}
        # the prompt is exactly what `graft rag ask` would send for this question
        assert row["messages"][:-1] == build_prompt(kb, pair.question, template, None, 3).messages
    assert sum(report.gold_position.values()) == len(PAIRS)


def test_a_missed_gold_source_is_put_in_and_counted(kb, tmp_path):
    # the question is about tea, so retrieval ranks tea.txt first; the gold source says pumps
    pairs = read_pairs(_pairs_file(tmp_path / "qa.jsonl", [("Why is my green tea bitter?", "Oil it.", "pumps.txt")]), kb)
    positions = set()
    for seed in range(6):
        (row,), _, report = build_dataset(kb, pairs, load_template(), k=3, seed=seed)
        assert report.gold_inserted == 1 and row["rag"]["inserted"]
        shown = _shown_sources(row)
        assert len(shown) == 3 and sorted(shown) == [1, 2, 3]
        assert shown[row["rag"]["gold"]].endswith("/pumps.txt")
        assert sum(s.endswith("/pumps.txt") for s in shown.values()) == 1
        assert row["messages"][-1]["content"] == f"Oil it. [{row['rag']['gold']}]"
        positions.add(row["rag"]["gold"])
    assert len(positions) > 1  # a random position, not always the same


def test_held_out_rows_are_disjoint_and_questions_appear_once(kb, tmp_path):
    pairs = read_pairs(_pairs_file(tmp_path / "qa.jsonl", PAIRS + [(PAIRS[0][0].upper(), "Weekly.", "pumps.txt")]), kb)
    train, held, report = build_dataset(kb, pairs, load_template(), k=2, holdout=2, seed=3)
    asked = lambda rows: {r["rag"]["question"].lower() for r in rows}  # noqa: E731
    assert len(held) == 2 and len(train) == 3 and report.duplicates == 1
    assert not asked(train) & asked(held)
    again, again_held, _ = build_dataset(kb, pairs, load_template(), k=2, holdout=2, seed=3, shuffle=True)
    assert asked(again_held) == asked(held)  # shuffling the sources keeps the held-out questions
    limited, _, _ = build_dataset(kb, pairs, load_template(), k=2, holdout=2, limit=1, seed=3)
    assert len(limited) == 1
    assert heldout_path(tmp_path / "rows.jsonl").name == "rows.heldout.jsonl"


def test_records_are_their_own_source(tmp_path):
    records = tmp_path / "records.json"
    records.write_text(json.dumps([
        {"instruction": "Name the capital of Peru.", "input": "", "output": "Lima."},
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour."},
        {"instruction": "What freezes water?", "input": "", "output": "Cold below zero degrees Celsius."},
    ]))
    kb = KnowledgeBase.create("records", root=tmp_path / "kbs")
    with pytest.raises(DataError, match="not indexed") as e:
        read_pairs(records, kb)
    assert "graft rag index" in e.value.hint
    kb.add([records])
    pairs = read_pairs(records, kb)
    assert pairs[1].question == "Translate to French.\n\nGood morning" and pairs[1].answer == "Bonjour."
    train, _, _ = build_dataset(kb, pairs, load_template(), k=2)
    for row in train:
        pair = next(p for p in pairs if p.question == row["rag"]["question"])
        assert row["rag"]["source"] == pair.source and pair.source.endswith(f"records.json#{pair.row}")
        assert _shown_sources(row)[row["rag"]["gold"]] == pair.source


def test_bad_rows_are_named(kb, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q?", "answer": "a", "source": "pumps.txt"}) + "\n"
                   + json.dumps({"question": "q?", "source": "pumps.txt"}) + "\n")
    with pytest.raises(DataRowError) as e:
        read_pairs(bad)
    assert (e.value.file, e.value.row, e.value.field) == (str(bad), 2, "answer")
    bad.write_text("\n" + json.dumps({"text": "hello"}) + "\n")
    with pytest.raises(DataRowError, match="row 2.*found keys text"):
        read_pairs(bad)
    pairs = read_pairs(_pairs_file(bad, [PAIRS[0], ("q?", "a", "manual.pdf")]), kb)
    with pytest.raises(DataRowError) as e:
        build_dataset(kb, pairs, load_template(), k=5)
    assert (e.value.row, e.value.field) == (2, "source") and "manual.pdf" in str(e.value)


def test_scores_count_gold_and_any_citation():
    rows = [{"rag": {"gold": 2, "sources": 3}}, {"rag": {"gold": 1, "sources": 3}}, {"rag": {"gold": 3, "sources": 3}}]
    scores = score_citations(rows, ["It is so [2].", "See [2, 1].", "No idea [7]."])
    assert (scores["cites_gold"], scores["cites_any"], scores["cites_only_gold"]) == (0.6667, 0.6667, 0.3333)


def test_cli_writes_rows_graft_train_reads(kb, tmp_path, tiny_model_dir):
    from graft.data.load import load_examples

    pairs = _pairs_file(tmp_path / "qa.jsonl", PAIRS)
    out = tmp_path / "rows.jsonl"
    done = run_graft("rag", "dataset", kb.name, pairs, "-o", out, "-k", "2", "--holdout", "1", "--model",
                     tiny_model_dir, "--root", kb.folder.parent, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["train"], report["heldout"]) == (4, 1) and report["heldout_output"].endswith("rows.heldout.jsonl")
    loaded = load_examples(str(out))
    assert len(loaded.examples) == 4
    assert [m["role"] for m in loaded.examples[0].messages] == ["system", "user", "assistant"]
    bad = run_graft("rag", "dataset", kb.name, tmp_path / "none.jsonl", "-o", out, "--model", tiny_model_dir,
                    "--root", kb.folder.parent)
    assert bad.returncode != 0 and "none.jsonl" in bad.stderr + bad.stdout
