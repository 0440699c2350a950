"""/api/rag on a real server (uvicorn, the tiny Llama, the bundled MiniLM): knowledge bases created and
listed, documents uploaded (Markdown, HTML, a Latin-1 text) and indexed, searched, and asked about, in
JSON and as Server-Sent Events; the errors (unknown base or model, empty question, unsafe names, the
upload limit) and concurrent uploads to one base."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from graft.inference.stream import Reply, Usage
from graft.rag import cited_numbers
from testkit import TOKEN

LIMIT = 20_000

EXPORT_MD = """# Exporting a model

## GGUF

Run `graft export RUN --format gguf --quant q4_k_m` to write a quantized GGUF file that llama.cpp
and Ollama load. The quantization shrinks the weights to about four bits each.

## Merged weights

`graft export RUN --format merged` folds the LoRA adapter into the base model's safetensors.
"""

BREAD_HTML = """<html><head><title>Baking</title></head><body>
<h1>Sourdough bread</h1>
<p>Feed the starter with flour and water the night before. Knead the dough, let it rise for
eight hours, then bake the loaf in a hot Dutch oven at 250 degrees for forty minutes.</p>
<script>var ignored = "not text";</script>
</body></html>"""

# Latin-1, not UTF-8: the reader has to detect it
CAFE_TXT = ("Notes from the café in Zürich: the barista grinds the espresso beans finely, tamps them "
            "firmly and pulls each shot for twenty-five seconds. Crème brûlée is served on Fridays.\n").encode("latin-1")


@pytest.fixture(scope="module")
def pool(tiny_model_dir):
    from graft.inference.pool import open_pool

    return open_pool(str(tiny_model_dir))


@pytest.fixture(scope="module")
def site(serve, pool, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rag-server")
    url, app = serve(pool, tmp, token=TOKEN, rag_dir=str(tmp / "rag"), max_upload_bytes=LIMIT)
    return url, tmp / "rag"


@pytest.fixture(scope="module")
def http(site):
    with httpx.Client(base_url=site[0], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def docs(http, site):
    """A knowledge base 'docs' holding the three documents."""
    assert http.post("/api/rag", json={"name": "docs", "chunk_size": 400, "overlap": 40}).status_code == 201
    r = http.post("/api/rag/docs/documents", files=[("files", ("export.md", EXPORT_MD)), ("files", ("bread.html", BREAD_HTML)),
                                                    ("files", ("cafe.txt", CAFE_TXT))])
    assert r.status_code == 200, r.text
    return r.json()


def test_create_list_and_describe(http, docs, site):
    assert sorted(docs["added"]) == ["bread.html", "cafe.txt", "export.md"]  # names, not the server's paths
    assert not docs["updated"] and not docs["skipped"] and docs["chunks"] >= 3 and docs["chunks_embedded"] == docs["chunks"]
    assert sorted(p.name for p in (site[1] / "docs" / "docs").iterdir()) == ["bread.html", "cafe.txt", "export.md"]

    listed = http.get("/api/rag").json()
    assert [kb["name"] for kb in listed] == ["docs"]
    assert listed[0]["files"] == 3 and listed[0]["embedder"] == "minilm-l6" and listed[0]["dim"] == 384
    detail = http.get("/api/rag/docs").json()
    assert detail["chunk_size"] == 400 and detail["chunks"] == docs["chunks"]
    assert {d["source"]: d["uploaded"] for d in detail["documents"]} == {"bread.html": True, "cafe.txt": True, "export.md": True}

    again = http.post("/api/rag", json={"name": "docs"})
    assert again.status_code == 409 and "exists" in again.json()["error"]["message"]
    for bad in ({"name": "../up"}, {"name": ""}, {"name": "x", "embedder": "some/hub-model"}, {"name": "x", "index": "tree"}):
        assert http.post("/api/rag", json=bad).status_code == 422, bad
    overlap = http.post("/api/rag", json={"name": "x", "chunk_size": 100, "overlap": 60})
    assert overlap.status_code == 400 and "overlap" in overlap.json()["error"]["message"]
    assert [kb["name"] for kb in http.get("/api/rag").json()] == ["docs"]  # nothing half-made


def test_reupload_is_unchanged_and_a_changed_file_is_reindexed(http, docs):
    same = http.post("/api/rag/docs/documents", files={"files": ("export.md", EXPORT_MD)}).json()
    assert same["unchanged"] == ["export.md"] and same["chunks_embedded"] == 0 and same["chunks"] == docs["chunks"]
    changed = http.post("/api/rag/docs/documents", files={"files": ("export.md", EXPORT_MD + "\n## ONNX\n\nNot yet.\n")}).json()
    assert changed["updated"] == ["export.md"] and changed["chunks_embedded"] > 0
    http.post("/api/rag/docs/documents", files={"files": ("export.md", EXPORT_MD)})  # back as it was


@pytest.mark.parametrize("query,source", [
    ("How do I make a quantized file for llama.cpp?", "export.md"),
    ("How long should the loaf rise and bake?", "bread.html"),
    ("coffee espresso shot barista", "cafe.txt"),
])
def test_search_finds_the_right_document_first(http, docs, query, source):
    hits = http.post("/api/rag/docs/search", json={"query": query, "k": 3}).json()
    assert hits[0]["source"] == source, [(h["source"], h["score"]) for h in hits]
    assert [h["n"] for h in hits] == list(range(1, len(hits) + 1))
    assert hits[0]["score"] >= hits[-1]["score"]


def test_non_utf8_text_is_decoded(http, docs):
    hit = http.post("/api/rag/docs/search", json={"query": "café Zürich crème brûlée", "k": 1}).json()[0]
    assert hit["source"] == "cafe.txt" and "café in Zürich" in hit["text"] and "Crème brûlée" in hit["text"]


def test_html_text_without_markup_or_scripts(http, docs):
    hit = http.post("/api/rag/docs/search", json={"query": "sourdough starter dough", "k": 1}).json()[0]
    assert hit["source"] == "bread.html" and "Dutch oven" in hit["text"]
    assert "<p>" not in hit["text"] and "ignored" not in hit["text"]


def test_ask_json(http, docs, pool):
    r = http.post("/api/rag/docs/ask", json={"question": "How do I export to GGUF?", "k": 3, "max_tokens": 12,
                                             "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == pool.default and isinstance(body["answer"], str)
    assert 1 <= len(body["sources"]) <= 3 and body["sources"][0]["source"] == "export.md"
    # the tiny model reads 512 tokens: the sources' budget shrinks to fit (the template's 1500 would overflow it)
    assert len(body["sources"]) + body["left_out"] == 3 and body["left_out"] >= 1
    assert [s["n"] for s in body["sources"]] == list(range(1, len(body["sources"]) + 1))
    assert body["cited"] == cited_numbers(body["answer"], len(body["sources"]))
    assert [s["n"] for s in body["sources"] if s["cited"]] == sorted(body["cited"])
    usage = body["usage"]
    assert usage["prompt_tokens"] > 50 and 0 < usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # the question joins the request log like any chat request
    logged = http.get("/v1/monitor/requests").json()["data"]
    assert any(row["prompt"] == "How do I export to GGUF?" for row in logged)


def events(response) -> list[tuple[str, dict]]:
    out = []
    for block in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def test_ask_streamed(http, docs, pool):
    r = http.post("/api/rag/docs/ask", json={"question": "How long does the bread bake?", "k": 2, "max_tokens": 12,
                                             "temperature": 0, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    got = events(r)
    kinds = [kind for kind, _ in got]
    assert kinds[0] == "sources" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}, kinds
    head, done = got[0][1], got[-1][1]
    assert head["model"] == pool.default and head["sources"][0]["source"] == "bread.html"
    assert all(s["cited"] is False for s in head["sources"])  # nothing is cited before the answer is written
    text = "".join(data["text"] for kind, data in got if kind == "delta")
    assert done["answer"] == text.strip() and done["cited"] == cited_numbers(text, len(head["sources"]))
    assert 0 < done["usage"]["completion_tokens"] <= 12

    # the same question in JSON, greedy: the same answer
    plain = http.post("/api/rag/docs/ask", json={"question": "How long does the bread bake?", "k": 2, "max_tokens": 12,
                                                 "temperature": 0}).json()
    assert plain["answer"] == done["answer"]


def test_citations_mark_their_sources(http, pool, site, monkeypatch):
    """A model that cites [2] then [1, 7]: those two sources are flagged, 7 (not retrieved) is not."""
    assert http.post("/api/rag", json={"name": "short"}).status_code == 201
    # short: three fit the tiny model's 512 tokens
    notes = {"gguf.md": "Export to GGUF: graft export --format gguf.", "quant.md": "Quantize an export: --quant q4_k_m.",
             "bread.md": "Bake bread at 250 degrees."}
    http.post("/api/rag/short/documents", files=[("files", item) for item in notes.items()])
    seen = {}

    def citing(model_id, messages, **options):
        seen.update(messages=messages, options=options)

        def pieces():
            yield "Export with GGUF [2]"
            yield ", then quantize [1, 7]."
            return Usage(prompt_tokens=40, completion_tokens=9, finish_reason="stop")
        return Reply(pieces())

    monkeypatch.setattr(pool, "stream", citing)
    body = http.post("/api/rag/short/ask", json={"question": "How do I export to GGUF?", "k": 3, "max_tokens": 2}).json()
    assert body["answer"] == "Export with GGUF [2], then quantize [1, 7]." and body["cited"] == [2, 1]
    assert [(s["source"], s["cited"]) for s in body["sources"]] == [("gguf.md", True), ("quant.md", True), ("bread.md", False)]
    assert body["usage"] == {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49, "finish_reason": "stop"}
    # the prompt holds the sources, numbered, with the question; the request's settings reach the model
    prompt = seen["messages"][-1]["content"]
    assert prompt.index("[1] ") < prompt.index("[2] ") < prompt.index("[3] ") < prompt.index("How do I export to GGUF?")
    assert "graft export --format gguf" in prompt and "[1] gguf.md" in prompt
    assert str(site[1]) not in prompt  # an upload by its name, not by where the server keeps it
    assert seen["options"]["max_new_tokens"] == 2 and seen["options"]["temperature"] == 0.0

    streamed = events(http.post("/api/rag/short/ask", json={"question": "How do I export to GGUF?", "k": 3, "max_tokens": 2,
                                                    "stream": True}))
    assert streamed[-1] == ("done", {"answer": body["answer"], "cited": [2, 1], "usage": body["usage"]})


def test_errors(http, docs, site):
    missing = http.post("/api/rag/nope/ask", json={"question": "Anything?"})
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert "'nope'" in error["message"] and "docs" in error["hint"]  # names the base and lists the known ones
    assert http.get("/api/rag/nope").status_code == 404
    assert http.post("/api/rag/nope/search", json={"query": "x"}).status_code == 404

    for question in ("", "   \n"):
        r = http.post("/api/rag/docs/ask", json={"question": question})
        assert r.status_code == 422 and r.json()["error"]["param"] == "question", r.text
    assert http.post("/api/rag/docs/search", json={"query": " "}).status_code == 422
    assert http.post("/api/rag/docs/ask", json={"question": "Why?", "k": 0}).status_code == 422

    model = http.post("/api/rag/docs/ask", json={"question": "Why?", "model": "no-such-model"})
    assert model.status_code == 404 and model.json()["error"]["code"] == "model_not_found"

    assert http.post("/api/rag", json={"name": "empty"}).status_code == 201
    empty = http.post("/api/rag/empty/ask", json={"question": "Why?"})
    assert empty.status_code == 409 and "no documents" in empty.json()["error"]["message"]
    assert http.post("/api/rag/empty/search", json={"query": "why"}).json() == []

    unauthorised = httpx.get(f"{site[0]}/api/rag")
    assert unauthorised.status_code == 401


def test_upload_names_cannot_leave_the_folder(http, site):
    assert http.post("/api/rag", json={"name": "names"}).status_code == 201
    folder = site[1] / "names"
    for name in ("../../escape.md", "..\\..\\escape2.md", "/etc/escape3.md"):
        r = http.post("/api/rag/names/documents", files={"files": (name, "# Escape\n\nStill inside.\n")})
        assert r.status_code == 200, r.text
    assert sorted(p.name for p in (folder / "docs").iterdir()) == ["escape.md", "escape2.md", "escape3.md"]
    written = list(site[1].parent.rglob("escape*.md"))
    assert len(written) == 3 and all(p.parent == folder / "docs" for p in written)
    assert not Path("/etc/escape3.md").exists()
    documents = http.get("/api/rag/names").json()["documents"]
    assert sorted(d["source"] for d in documents) == ["escape.md", "escape2.md", "escape3.md"]

    for name in ("..", "notes.exe", "noext"):
        bad = http.post("/api/rag/names/documents", files={"files": (name, "text")})
        assert bad.status_code == 400, (name, bad.text)
    assert len(list((folder / "docs").iterdir())) == 3


def test_unreadable_files_are_reported_and_not_kept(http, site):
    assert http.post("/api/rag", json={"name": "broken"}).status_code == 201
    files = {"rows.json": "{not json", "blob.txt": b"\x00\x01\x02" * 50, "fine.md": "# Fine\n\nA readable note.\n"}
    r = http.post("/api/rag/broken/documents", files=[("files", item) for item in files.items()])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == ["fine.md"] and sorted(s["path"] for s in body["skipped"]) == ["blob.txt", "rows.json"]
    for skipped in body["skipped"]:
        assert skipped["reason"].startswith(skipped["path"]) and str(site[1]) not in skipped["reason"], skipped
    assert sorted(p.name for p in (site[1] / "broken" / "docs").iterdir()) == ["fine.md"]


def test_over_the_limit_is_413_and_stores_nothing(http, site):
    assert http.post("/api/rag", json={"name": "big"}).status_code == 201
    before = http.get("/api/rag/big").json()
    big = "word " * (LIMIT // 5 + 100)
    r = http.post("/api/rag/big/documents", files={"files": ("big.txt", big)})
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    # two files under the limit each, over it together
    half = "word " * (LIMIT // 5 // 2 + 100)
    r = http.post("/api/rag/big/documents", files=[("files", ("a.txt", half)), ("files", ("b.txt", half))])
    assert r.status_code == 413
    folder = site[1] / "big"
    assert not (folder / "docs").exists() or not list((folder / "docs").iterdir())
    assert not [p for p in folder.iterdir() if p.name.startswith(".upload")]  # no staging left behind
    assert http.get("/api/rag/big").json() == before


def test_concurrent_uploads_to_one_base_all_land(http, monkeypatch):
    """Uploads to one base at once: each one's documents stay (none overwrites another's update)."""
    from graft.rag import KnowledgeBase

    embed = KnowledgeBase._embed

    def slow_embed(self, chunks, progress):
        time.sleep(0.3)  # widens the window in which two updates of one base would overlap
        return embed(self, chunks, progress)

    monkeypatch.setattr(KnowledgeBase, "_embed", slow_embed)
    assert http.post("/api/rag", json={"name": "busy"}).status_code == 201
    names = [f"doc{i}.md" for i in range(4)]
    results = {}

    def upload(name: str) -> None:
        results[name] = http.post("/api/rag/busy/documents", files={"files": (name, f"# {name}\n\nAbout {name}.\n")}).status_code

    threads = [threading.Thread(target=upload, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == dict.fromkeys(names, 200)
    assert sorted(d["source"] for d in http.get("/api/rag/busy").json()["documents"]) == names
    hits = http.post("/api/rag/busy/search", json={"query": "About doc1.md", "k": 10}).json()
    assert sorted(h["source"] for h in hits) == names  # every document's chunk is in the index, not only in the list


def test_an_update_by_another_writer_is_seen(http, site, tmp_path):
    """`graft rag index` into a base the server has open: the next search finds the new document."""
    from graft.rag import KnowledgeBase

    assert http.post("/api/rag", json={"name": "shared"}).status_code == 201
    http.post("/api/rag/shared/documents", files={"files": ("bread.md", "# Bread\n\nBake sourdough bread slowly.\n")})
    assert http.post("/api/rag/shared/search", json={"query": "volcano lava", "k": 5}).json()[0]["source"] == "bread.md"
    lava = tmp_path / "lava.md"
    lava.write_text("# Volcanoes\n\nVolcanoes erupt molten lava from deep inside the earth.\n")
    KnowledgeBase.open("shared", site[1]).add([lava])
    hits = http.post("/api/rag/shared/search", json={"query": "volcano lava", "k": 5}).json()
    assert hits[0]["source"].endswith("lava.md") and len(hits) == 2
    documents = {Path(d["source"]).name: d["uploaded"] for d in http.get("/api/rag/shared").json()["documents"]}
    assert documents == {"bread.md": True, "lava.md": False}


def test_the_embedder_loads_once(http, docs):
    from graft.rag.kb import embedder_for

    http.post("/api/rag/docs/search", json={"query": "warm up"})
    loads = embedder_for.cache_info().misses
    for q in ("one", "two", "three"):
        assert http.post("/api/rag/docs/search", json={"query": q, "k": 1}).status_code == 200
    assert embedder_for.cache_info().misses == loads


def test_delete(http, site):
    assert http.post("/api/rag", json={"name": "gone"}).status_code == 201
    http.post("/api/rag/gone/documents", files={"files": ("a.md", "# A\n\nalpha\n")})
    assert http.delete("/api/rag/gone").status_code == 204
    assert not (site[1] / "gone").exists()
    assert http.get("/api/rag/gone").status_code == 404
    assert "gone" not in [kb["name"] for kb in http.get("/api/rag").json()]
