"""`graft rag` as a user runs it: index, search, eval, ask, and the errors."""

from __future__ import annotations

import json

import pytest
from testkit import run_graft


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    home = tmp_path_factory.mktemp("rag_home")
    docs = home / "docs"
    docs.mkdir()
    (docs / "install.md").write_text("# Install\n\nRun the setup script, then start the service with the serve command.")
    (docs / "billing.txt").write_text("Invoices are sent on the first day of each month by email.")
    (docs / "notes.docx").write_bytes(b"PK")
    done = run_graft("rag", "index", docs / "install.md", docs / "billing.txt", docs / "notes.docx", "--name", "help",
                     "--root", home / "kbs", "--json")
    assert done.returncode == 0, done.stderr
    return home, json.loads(done.stdout)


def test_index_reports_what_it_did(indexed):
    _, report = indexed
    assert len(report["added"]) == 2 and report["chunks"] == 2
    assert report["skipped"][0]["path"].endswith("notes.docx")
    assert report["kb"]["embedder"] == "minilm-l6" and report["kb"]["dim"] == 384


def test_search_and_eval(indexed):
    home, _ = indexed
    found = run_graft("rag", "search", "help", "when do I get my bill?", "-k", "1", "--root", home / "kbs", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["source"].endswith("billing.txt")
    questions = home / "q.jsonl"
    questions.write_text(json.dumps({"question": "how do I launch the server?", "source": "install.md"}) + "\n")
    result = run_graft("rag", "eval", "help", questions, "--k", "1,2", "--root", home / "kbs", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["recall@1"] == 1.0


def test_ask_answers_with_sources(indexed, tiny_model_dir):
    home, _ = indexed
    template = home / "small.yaml"
    template.write_text(run_graft("rag", "template").stdout.replace("max_tokens: 256", "max_tokens: 8"))
    done = run_graft("rag", "ask", "help", "when are invoices sent?", "--model", tiny_model_dir, "-k", "2",
                     "--template", template, "--root", home / "kbs", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [s["n"] for s in result["sources"]] == [1, 2]
    assert result["sources"][0]["source"].endswith("billing.txt")
    assert isinstance(result["answer"], str) and all("cited" in s for s in result["sources"])


def test_unknown_knowledge_base_is_a_clear_error(indexed):
    home, _ = indexed
    done = run_graft("rag", "ask", "nope", "anything?", "--root", home / "kbs")
    assert done.returncode != 0
    assert "no knowledge base named 'nope'" in done.stderr + done.stdout
    assert "known: help" in done.stderr + done.stdout


def test_a_missing_document_path_is_named_and_creates_nothing(tmp_path):
    done = run_graft("rag", "index", tmp_path / "nope.md", "--name", "fresh", "--root", tmp_path / "kbs")
    assert done.returncode != 0 and "nope.md: no such file or folder" in done.stderr + done.stdout
    assert not (tmp_path / "kbs" / "fresh").exists()
