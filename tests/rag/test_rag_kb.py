"""Knowledge bases: indexing, search, persistence and reload, incremental updates, bad states."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graft.errors import ConfigError, ConflictError, DataError
from graft.rag import KnowledgeBase, KnowledgeBaseNotFoundError, list_knowledge_bases

DOCS = {
    "pumps.md": "# Pumps\n\nThe water pump must be oiled every week, or its bearings wear out.\n\n"
                "## Noise\n\nA grinding noise means the impeller is damaged and must be replaced.\n",
    "garden.txt": "Tomatoes need full sun and deep watering twice a week in summer.",
    "bread.html": "<h1>Baking</h1><p>Sourdough bread rises slowly overnight in a cool kitchen.</p>",
}


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def kb(tmp_path, corpus):
    kb = KnowledgeBase.create("kb", root=tmp_path / "kbs", chunk_size=200, overlap=20)
    kb.add([corpus])
    return kb


def _top(kb, query):
    return kb.search(query, 3)[0].chunk


def test_search_finds_the_passage_by_meaning(kb):
    assert _top(kb, "which plant wants a lot of sunlight?").source.endswith("garden.txt")
    assert _top(kb, "my pump makes a scraping sound").title == "Pumps > Noise"
    assert _top(kb, "how long does sourdough take to rise").source.endswith("bread.html")
    hits = kb.search("pump maintenance", 10)
    assert [h.n for h in hits] == list(range(1, len(hits) + 1))
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_reloaded_from_disk_it_answers_the_same(kb, tmp_path):
    before = [(h.chunk.id, round(h.score, 5)) for h in kb.search("oiling the bearings", 4)]
    again = KnowledgeBase.open("kb", tmp_path / "kbs")
    assert again.info() == kb.info()
    assert [(h.chunk.id, round(h.score, 5)) for h in again.search("oiling the bearings", 4)] == before
    assert {f["source"].rsplit("/", 1)[-1] for f in again.files()} == set(DOCS)
    assert [k["name"] for k in list_knowledge_bases(tmp_path / "kbs")] == ["kb"]


def test_adding_again_embeds_only_what_changed(kb, corpus, tmp_path):
    same = kb.add([corpus])
    assert same.chunks_embedded == 0 and len(same.unchanged) == 3 and not same.added
    (corpus / "garden.txt").write_text("Cucumbers climb a trellis and need daily watering.")
    (corpus / "new.md").write_text("# Bikes\n\nPump the tyres to the pressure printed on their side.")
    report = KnowledgeBase.open("kb", tmp_path / "kbs").add([corpus])
    assert [s.rsplit("/", 1)[-1] for s in report.updated] == ["garden.txt"]
    assert [s.rsplit("/", 1)[-1] for s in report.added] == ["new.md"]
    assert report.chunks_embedded == 2
    kb = KnowledgeBase.open("kb", tmp_path / "kbs")
    texts = [h.chunk.text for h in kb.search("vegetables in the garden", 10)]
    assert not any("Tomatoes" in t for t in texts)  # the old version is gone
    assert any("Cucumbers" in t for t in texts)
    ids = [h.chunk.id for h in kb.search("anything", 20)]
    assert len(ids) == len(set(ids)) == report.chunks


def test_prune_drops_files_gone_from_disk(kb, corpus):
    (corpus / "bread.html").unlink()
    kept = kb.add([corpus])
    assert not kept.removed and kb.info()["files"] == 3  # without prune a vanished file stays
    report = kb.add([corpus], prune=True)
    assert [s.rsplit("/", 1)[-1] for s in report.removed] == ["bread.html"]
    assert all(not h.chunk.source.endswith("bread.html") for h in kb.search("sourdough", 10))


def test_bad_files_are_skipped_with_reasons_and_the_rest_indexed(tmp_path, corpus):
    (corpus / "blob.txt").write_bytes(b"\x00\x00binary")
    (corpus / "empty.md").write_text("")
    kb = KnowledgeBase.create("kb2", root=tmp_path / "kbs")
    report = kb.add([corpus])
    assert [s.path.rsplit("/", 1)[-1] for s in report.skipped] == ["blob.txt"]
    assert "binary" in report.skipped[0].reason
    assert report.chunks >= 3


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_other_index_kinds_agree_on_a_small_corpus(tmp_path, corpus, kind):
    kb = KnowledgeBase.create(f"kb-{kind}", root=tmp_path / "kbs", index=kind, chunk_size=200, overlap=20)
    kb.add([corpus])
    assert _top(kb, "my pump makes a scraping sound").title == "Pumps > Noise"
    assert KnowledgeBase.open(f"kb-{kind}", tmp_path / "kbs").info()["index"] == kind


def test_a_missing_knowledge_base_is_named_with_the_known_ones(kb, tmp_path):
    with pytest.raises(KnowledgeBaseNotFoundError, match="'nope'") as err:
        KnowledgeBase.open("nope", tmp_path / "kbs")
    assert "known: kb" in str(err.value.hint)


def test_creating_twice_conflicts_and_settings_must_match(kb, tmp_path):
    with pytest.raises(ConflictError):
        KnowledgeBase.create("kb", root=tmp_path / "kbs")
    with pytest.raises(ConfigError, match="chunk_size=200"):
        KnowledgeBase.open_or_create("kb", tmp_path / "kbs", chunk_size=500)
    assert KnowledgeBase.open_or_create("kb", tmp_path / "kbs", chunk_size=200).info()["chunk_size"] == 200


def test_names_cannot_escape_the_root(tmp_path):
    kb = KnowledgeBase.create("../../escape", root=tmp_path / "kbs")
    assert kb.folder.parent == tmp_path / "kbs"
    with pytest.raises(ConfigError):
        KnowledgeBase.create("..", root=tmp_path / "kbs")


def test_wrong_embedding_dimension_is_a_clear_error(kb, tmp_path):
    meta_file = kb.folder / "kb.json"
    meta = json.loads(meta_file.read_text())
    meta["dim"] = 768  # as if built by another embedder
    meta_file.write_text(json.dumps(meta))
    tampered = KnowledgeBase.open("kb", tmp_path / "kbs")
    with pytest.raises(ConfigError, match="768-dimensional.*gives 384"):
        tampered.search("pump")
    with pytest.raises(ConfigError, match="shape \\(384,\\).*768"):
        tampered.search_vector(np.ones(384, np.float32))


def test_vectors_that_do_not_match_the_chunks_are_named(kb, tmp_path):
    [vectors] = kb.folder.glob("vectors.*.npy")
    np.save(vectors, np.zeros((2, 384), np.float32))
    with pytest.raises(DataError, match=r"vectors\.\d+\.npy.*expects"):
        KnowledgeBase.open("kb", tmp_path / "kbs").search("pump")


def test_an_interrupted_update_leaves_the_previous_state(kb, corpus, tmp_path, monkeypatch):
    import graft.rag.kb as kb_module

    before = kb.info()
    (corpus / "more.txt").write_text("Chickens lay more eggs with fifteen hours of light.")
    real = kb_module._write

    def disk_full(path, text):
        raise OSError("disk full")

    monkeypatch.setattr(kb_module, "_write", disk_full)  # the new generation's data is written, kb.json is not
    with pytest.raises(OSError):
        KnowledgeBase.open("kb", tmp_path / "kbs").add([corpus])
    monkeypatch.setattr(kb_module, "_write", real)
    reopened = KnowledgeBase.open("kb", tmp_path / "kbs")
    assert reopened.info() == before
    assert all("Chickens" not in h.chunk.text for h in reopened.search("eggs", 10))
    report = reopened.add([corpus])  # the retry indexes the file once, no duplicates
    assert [s.rsplit("/", 1)[-1] for s in report.added] == ["more.txt"]
    assert report.chunks == before["chunks"] + 1
    assert len(list(kb.folder.glob("chunks.*.jsonl"))) == 1  # older generations are removed


def test_two_writers_on_one_knowledge_base_lose_nothing(kb, tmp_path):
    import threading

    first, second = KnowledgeBase.open("kb", tmp_path / "kbs"), KnowledgeBase.open("kb", tmp_path / "kbs")
    for name in ("a", "b"):
        (tmp_path / f"{name}.txt").write_text(f"Note {name}: the {name}-team meets on Fridays about budgets.")
    threads = [threading.Thread(target=w.add, args=([tmp_path / f"{n}.txt"],)) for w, n in ((first, "a"), (second, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = KnowledgeBase.open("kb", tmp_path / "kbs")
    assert after.info()["files"] == len(DOCS) + 2  # neither writer's update overwrote the other's
    assert {h.chunk.source.rsplit("/", 1)[-1] for h in after.search("team meetings", 10)} >= {"a.txt", "b.txt"}


def test_uploaded_documents_cite_by_their_name_and_long_names_are_refused(kb, tmp_path):
    kb.docs_dir.mkdir(exist_ok=True)
    (kb.docs_dir / "manual.md").write_text("# Manual\n\nHold the reset button for ten seconds to restore defaults.")
    report = kb.add([kb.docs_dir / "manual.md"])
    assert report.added == ["manual.md"]
    assert kb.search("restore factory settings", 1)[0].chunk.source == "manual.md"
    with pytest.raises(ConfigError, match="at most 100"):
        KnowledgeBase.create("x" * 300, root=tmp_path / "kbs")


def test_reindex_changes_the_kind_without_embedding(kb, tmp_path, monkeypatch):
    before = [h.chunk.id for h in kb.search("pump noise", 3)]
    monkeypatch.setattr(KnowledgeBase, "_embed", lambda *a: pytest.fail("reindexing must not embed"))
    kb.reindex("hnsw")
    again = KnowledgeBase.open("kb", tmp_path / "kbs")
    assert again.info()["index"] == "hnsw"
    monkeypatch.undo()
    assert [h.chunk.id for h in again.search("pump noise", 3)] == before
    with pytest.raises(ConfigError, match="unknown index kind"):
        again.reindex("annoy")


def test_a_long_lived_object_sees_what_another_writer_committed(kb, tmp_path):
    reader = KnowledgeBase.open("kb", tmp_path / "kbs")
    reader.search("pump", 1)  # loaded now
    (tmp_path / "late.txt").write_text("The lighthouse keeper winds the lamp clockwork every dusk.")
    KnowledgeBase.open("kb", tmp_path / "kbs").add([tmp_path / "late.txt"])
    assert reader.info()["files"] == len(DOCS) + 1
    assert reader.search("who tends the lighthouse lamp?", 1)[0].chunk.source.endswith("late.txt")
    KnowledgeBase.open("kb", tmp_path / "kbs").delete()
    with pytest.raises(KnowledgeBaseNotFoundError):
        reader.search("pump", 1)
