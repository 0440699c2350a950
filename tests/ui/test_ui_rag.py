"""The Knowledge page in headless Chromium: create a knowledge base, upload two documents and see the
index report, ask a question and read the streamed answer with its numbered sources (the right file
first, a long chunk expanding), and see cited sources highlighted.

Needs Debian's chromium and the playwright package (as test_ui_browser.py); skipped without them."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from test_ui_browser import SCREENSHOTS, browser, no_chromium, no_playwright, page  # noqa: F401 (fixtures)
from testkit import running

TOKEN = "ui-rag-token"

EXPORT_MD = """# Exporting a model

## GGUF

Run `graft export RUN --format gguf --quant q4_k_m` to write a quantized GGUF file that llama.cpp and
Ollama load directly. The quantization stores each weight in about four bits, so a 135M model shrinks
to under a hundred megabytes, and the export keeps the chat template so the runtime formats prompts the
way the model was trained to read them.

## Merged weights

`graft export RUN --format merged` folds the LoRA adapter into the base model's safetensors.
"""

BREAD_HTML = """<html><body><h1>Sourdough bread</h1>
<p>Feed the starter the night before, let the dough rise for eight hours, then bake it for forty minutes.</p>
</body></html>"""


@pytest.fixture(scope="module")
def site(tiny_model_dir, tmp_path_factory):
    """(base URL, tmp folder) of the full app on the tiny model behind TOKEN."""
    from graft.inference.pool import open_pool
    from graft.server import ServerSettings, create_app

    tmp = tmp_path_factory.mktemp("ui-rag")
    settings = ServerSettings(token=TOKEN, db=str(tmp / "graft.db"), rag_dir=str(tmp / "rag"), workers=0)
    with running(create_app(open_pool(str(tiny_model_dir)), settings)) as url:
        yield url, tmp


@no_chromium
@no_playwright
def test_upload_ask_and_read_the_sources(site, page, tiny_model_dir):  # noqa: F811 (page is the imported fixture)
    from playwright.sync_api import expect

    url, tmp = site
    page.set_default_timeout(30_000)
    page.goto(url + "/ui/")
    page.fill("#token", TOKEN)
    page.click("#token-form button")

    page.click("nav a[href='#/rag']")
    expect(page.locator("main h1")).to_have_text("Knowledge")
    expect(page.locator("nav a[href='#/rag']")).to_have_class("active")
    expect(page.locator("#rag-info")).to_contain_text("Create a knowledge base")

    page.fill("#rag-new-name", "handbook")
    page.click("#rag-create button")
    expect(page.locator("#rag-kb")).to_have_value("handbook")
    expect(page).to_have_url(url + "/ui/#/rag/handbook")

    (tmp / "export.md").write_text(EXPORT_MD)
    (tmp / "bread.html").write_text(BREAD_HTML)
    page.set_input_files("#rag-upload input[type=file]", [str(tmp / "export.md"), str(tmp / "bread.html")])
    page.click("#rag-upload button")
    report = page.locator("#rag-report")
    expect(report).to_contain_text(re.compile(r"added: (export\.md, bread\.html|bread\.html, export\.md) "))
    expect(report).to_contain_text("chunk(s) embedded")
    expect(page.locator("#rag-info table tbody tr")).to_have_count(2)
    expect(page.locator("#rag-kb option:checked")).to_have_text("handbook (2 documents)")

    # the served model is offered; a short greedy answer from the 3 best chunks
    assert page.locator("#rag-model").input_value() == tiny_model_dir.name
    page.fill("input[name=k]", "3")
    page.fill("input[name=max_tokens]", "16")
    page.fill("#rag-question", "How do I write a quantized GGUF file for llama.cpp?")
    page.click("#rag-ask")
    expect(page.locator("#rag-answer[data-done=true]")).to_have_count(1)
    assert not page.locator("#rag-answer").evaluate("el => el.classList.contains('streaming')")
    assert page.locator("#rag-status .error").count() == 0, page.locator("#rag-status").inner_text()
    assert page.locator("#rag-answer").inner_text().strip(), "the answer is empty"
    expect(page.locator("#rag-meta")).to_contain_text("16 answer tokens")

    items = page.locator("#rag-sources li")
    assert 1 <= items.count() <= 3
    first = items.first
    expect(first).to_have_attribute("data-source", "export.md")
    expect(first.locator(".source-head")).to_contain_text("[1] export.md")
    expect(first.locator(".source-head")).to_contain_text("score 0.")
    # the long GGUF chunk: a snippet that expands to the whole text
    details = first.locator("details")
    expect(details).to_have_count(1)
    assert not details.evaluate("d => d.open")
    expect(details.locator(".source-text")).not_to_be_visible()
    details.locator("summary").click()
    expect(details.locator(".source-text")).to_contain_text("keeps the chat template")
    expect(details.locator(".source-text")).to_be_visible()
    expect(details.locator(".snippet")).not_to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "ui-rag.png"), full_page=True)


@no_chromium
@no_playwright
def test_cited_sources_are_highlighted(site, page):  # noqa: F811
    """The page marks what the final event says is cited (a tiny random model cites nothing, so the
    stream is played by the test)."""
    from playwright.sync_api import expect

    url, _ = site
    chunk = {"id": 0, "title": "", "page": None, "line": 1, "score": 0.5}
    events = [("sources", {"model": "m", "left_out": 0, "sources": [
                  {**chunk, "n": 1, "source": "a.md", "text": "alpha", "cited": False},
                  {**chunk, "n": 2, "source": "b.md", "text": "beta", "cited": False}]}),
              ("delta", {"text": "Beta, says "}), ("delta", {"text": "[2]."}),
              ("done", {"answer": "Beta, says [2].", "cited": [2],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13, "finish_reason": "stop"}})]
    body = "".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data in events)
    page.route("**/api/rag/*/ask", lambda route: route.fulfill(status=200, content_type="text/event-stream", body=body))

    made = httpx.post(f"{url}/api/rag", json={"name": "cites"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert made.status_code == 201, made.text
    page.add_init_script(f"localStorage.setItem('graft.token', '{TOKEN}')")
    page.goto(url + "/ui/#/rag/cites")  # straight to the base named in the address
    expect(page.locator("#rag-kb")).to_have_value("cites")
    page.fill("#rag-question", "Which one?")
    page.click("#rag-ask")
    expect(page.locator("#rag-answer[data-done=true]")).to_have_text("Beta, says [2].")
    cited = re.compile(r"\bcited\b")
    expect(page.locator("#rag-sources li[data-n='2']")).to_have_class(cited)
    expect(page.locator("#rag-sources li[data-n='1']")).not_to_have_class(cited)
    expect(page.locator("#rag-meta")).to_contain_text("4 answer tokens (stop); cites [2]")
