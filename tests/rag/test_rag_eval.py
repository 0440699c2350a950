"""Retrieval evaluation: recall@k and MRR from labelled questions, and bad question files."""

from __future__ import annotations

import json

import pytest

from graft.errors import DataError, DataRowError
from graft.rag import KnowledgeBase, evaluate_retrieval
from graft.rag.evaluate import Question


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("docs")
    (folder / "cats.md").write_text("# Cats\n\nCats sleep sixteen hours a day.\n\n## Food\n\nCats must eat meat: "
                                    "they cannot make taurine themselves.\n")
    (folder / "ships.txt").write_text("A ship's keel keeps it upright and on course in the wind.")
    (folder / "tea.txt").write_text("Green tea is steeped at 80 degrees for two minutes, black tea hotter.")
    kb = KnowledgeBase.create("eval", root=tmp_path_factory.mktemp("kbs"), chunk_size=120, overlap=0)
    kb.add([folder])
    return kb


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_recall_and_mrr_follow_the_ranks(kb, tmp_path):
    questions = _write(tmp_path / "q.jsonl", [
        {"question": "Why can a cat not live on vegetables?", "source": "cats.md", "contains": "taurine"},
        {"question": "What stops a sailing boat from tipping over?", "source": "ships.txt"},
        {"question": "How hot should water be for green tea?", "source": "tea.txt"},
        {"question": "Who wrote the first printed bible?", "source": "history.txt"},  # not in the knowledge base
    ])
    result = evaluate_retrieval(kb, questions, ks=(1, 3))
    ranks = [q["rank"] for q in result["per_question"]]
    assert ranks[:3] == [1, 1, 1] and ranks[3] is None
    assert result["recall@1"] == result["recall@3"] == 0.75
    assert result["mrr"] == 0.75 and result["questions"] == 4


def test_contains_labels_one_passage_of_a_file(kb):
    # the cats file has two chunks; asking about sleep with a label on the food passage ranks it lower
    sleep = Question("How long do cats sleep?", "cats.md", "taurine")
    anywhere = Question("How long do cats sleep?", "cats.md")
    ranks = [q["rank"] for q in evaluate_retrieval(kb, [sleep, anywhere], ks=(1, 5))["per_question"]]
    assert ranks[1] == 1 and ranks[0] > 1


def test_source_matches_a_path_suffix_not_a_name_fragment():
    from graft.rag.chunking import Chunk

    chunk = Chunk("/data/project/docs/tea.txt", "", "text", 0, 4)
    assert Question("q", "docs/tea.txt").relevant(chunk)
    assert not Question("q", "ea.txt").relevant(chunk)


@pytest.mark.parametrize("line,where", [
    ('{"question": "q"}', "row 2.*source"),
    ('{"question": "", "source": "a.txt"}', "row 2.*question"),
    ('not json', "row 2: not JSON"),
    ('{"question": "q", "source": "a.txt", "contains": 5}', "row 2.*contains"),
])
def test_bad_question_rows_are_named(kb, tmp_path, line, where):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "fine", "source": "tea.txt"}\n' + line + "\n")
    with pytest.raises(DataRowError, match=where):
        evaluate_retrieval(kb, path)


def test_missing_or_empty_question_file(kb, tmp_path):
    with pytest.raises(DataError, match="no such question file"):
        evaluate_retrieval(kb, tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no questions"):
        evaluate_retrieval(kb, tmp_path / "empty.jsonl")
