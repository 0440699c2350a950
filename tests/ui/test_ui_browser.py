"""The browser UI end to end, in headless Chromium driven by Playwright: paste the token, upload a
dataset, fill the new-run form for a 10-step LoRA on the tiny Llama, watch the job complete with its
loss chart drawn, then chat with the trained adapter and see the streamed reply; download a model
from a stand-in Hub on the models page and see the job's outcome there.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package; skipped without them."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from testkit import fake_hub, running

CHROMIUM = os.environ.get("GRAFT_CHROMIUM", "/usr/bin/chromium")
# the closed network floods a default Chromium with refused connections (updates, sync, QUIC probes)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "ui-test-token"
# screenshots go to a temporary folder; GRAFT_UI_SCREENSHOTS=docs/images refreshes the docs' pictures
SCREENSHOTS = Path(os.environ.get("GRAFT_UI_SCREENSHOTS") or tempfile.mkdtemp(prefix="graft-ui-"))

no_chromium = pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
no_playwright = pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                                   reason="playwright not installed (pip install playwright)")


@pytest.fixture(scope="module")
def site(tiny_model_dir, tmp_path_factory):
    """(base URL, tmp folder) of the full app on the tiny model behind TOKEN, with one embedded worker."""
    from graft.inference.pool import open_pool
    from graft.server import ServerSettings, create_app

    tmp = tmp_path_factory.mktemp("ui")
    # job children inherit this: two threads on a model this small only add waiting
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    settings = ServerSettings(token=TOKEN, db=str(tmp / "graft.db"), runs_root=str(tmp / "runs"),
                              datasets_dir=str(tmp / "datasets"), workers=1)
    app = create_app(open_pool(str(tiny_model_dir)), settings)
    with running(app) as url:  # uvicorn runs the app's lifespan: the embedded job worker starts and stops with it
        yield url, tmp
    if threads is None:
        os.environ.pop("OMP_NUM_THREADS")
    else:
        os.environ["OMP_NUM_THREADS"] = threads


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@no_chromium
@no_playwright
def test_train_watch_and_chat(site, page, tiny_model_dir, helpers):
    from playwright.sync_api import expect

    url, tmp = site
    page.set_default_timeout(20_000)
    page.goto(url + "/")
    assert page.url.startswith(url + "/ui/")  # / redirects to the UI

    # the token, pasted once, then kept by the browser
    page.fill("#token", TOKEN)
    page.click("#token-form button")
    assert page.evaluate("localStorage.getItem('graft.token')") == TOKEN

    data = tmp / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    # a dataset upload and its preview
    page.goto(url + "/ui/#/datasets")
    page.set_input_files("input[type=file]", str(data))
    page.click("main form button[type=submit]")
    expect(page.locator("#preview table tbody tr").first).to_be_visible()
    expect(page.locator("#preview")).to_contain_text("What colour is the apple?")
    dataset = "toy.json"  # the uploaded name; the form maps it to its path on the server

    # the new-run form: a live estimate, then a 10-step LoRA job
    page.goto(url + "/ui/#/new")
    form = page.locator("#new-run")
    form.locator("input[name=model]").fill(str(tiny_model_dir))
    form.locator("input[name=dataset]").fill(dataset)
    form.locator("select[name=technique]").select_option("lora")
    for name, value in {"max_steps": "10", "batch_size": "8", "lr": "0.005", "max_length": "64"}.items():
        form.locator(f"input[name={name}]").fill(value)
    expect(page.locator("#estimate .verdict")).to_have_attribute("data-fits", "true")
    page.screenshot(path=str(SCREENSHOTS / "ui-new-run.png"), full_page=True)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"#/jobs/\w+$"))

    # the job page follows the job to the end: status, full progress bar, a line with 10 points
    expect(page.locator("#job-status")).to_have_attribute("data-status", "completed", timeout=90_000)
    expect(page.locator("#loss-chart")).to_have_attribute("data-points", "10")
    expect(page.locator("#loss-chart svg .mark-line.role-mark path")).to_have_count(1)
    assert page.locator("#loss-chart svg .mark-symbol.role-mark path").count() == 10
    assert page.locator("#loss-chart svg").bounding_box()["width"] > 400, "the loss chart is drawn too narrow"
    assert page.evaluate("document.querySelector('#job-progress').value") == page.evaluate("document.querySelector('#job-progress').max")
    expect(page.locator("#download-adapter")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "ui-job.png"), full_page=True)

    # the adapter downloads as a zip (the click fetches it with the token)
    with page.expect_download() as download:
        page.click("#download-adapter")
    zipped = Path(download.value.path()).read_bytes()
    assert zipped[:2] == b"PK"

    # serve the run, chat with it: the reply streams into the page
    page.click("#serve-run")
    expect(page).to_have_url(re.compile(r"#/chat/"))
    chosen = page.locator("#chat-model").input_value()
    assert chosen != str(tiny_model_dir) and "(base)" not in page.locator("#chat-model option:checked").inner_text()
    page.fill("input[name=temperature]", "0")
    page.fill("input[name=max_tokens]", "24")
    page.fill("#chat-input", "What colour is the sky?")
    page.click("#chat-send")
    reply = page.locator(".bubble.assistant[data-done=true] .text")
    expect(reply).to_have_count(1, timeout=30_000)
    assert reply.inner_text().strip(), "the assistant's reply is empty"
    page.screenshot(path=str(SCREENSHOTS / "ui-chat.png"), full_page=True)

    # every other page loads without a script error (and says so when its API route is missing)
    for name, heading in [("models", "Models"), ("datasets", "Datasets"), ("jobs", "Jobs"), ("benchmarks", "Benchmarks")]:
        page.goto(f"{url}/ui/#/{name}")
        expect(page.locator("main h1")).to_have_text(heading)
        expect(page.locator("main")).not_to_contain_text("Loading…")
        if name == "jobs":
            expect(page.locator("main table tbody tr")).to_have_count(1)
            expect(page.locator("main table .badge")).to_have_text("completed")


@no_chromium
@no_playwright
def test_models_page_downloads_through_a_job(site, page, tmp_path, monkeypatch):
    from playwright.sync_api import expect

    url, _ = site
    files = {"config.json": b'{"model_type": "llama"}', "model.safetensors": bytes(range(256)) * 8192,
             "tokenizer.json": b"{}"}
    with fake_hub("org/tiny", files) as (hub, _):
        # read by the API process at each request and by the job's process when it starts
        for key, value in {"HF_ENDPOINT": hub, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf")}.items():
            monkeypatch.setenv(key, value)
        page.set_default_timeout(20_000)
        page.goto(url + "/ui/")
        page.fill("#token", TOKEN)
        page.click("#token-form button")
        page.goto(url + "/ui/#/models")
        status = page.locator("main .status")
        for hub_id, outcome in [("org/tiny", f"Downloaded org/tiny to {tmp_path / 'hf'}"),
                                ("org/absent", "org/absent: 'org/absent' not found on the Hub")]:
            page.fill("input[name=hub_id]", hub_id)
            page.click("main form button[type=submit]")
            expect(status).to_contain_text(outcome, timeout=60_000)
            expect(status.locator("a[href^='#/jobs/']")).to_have_count(0)  # the progress line gave way to the outcome
    snapshot = next((tmp_path / "hf").rglob("model.safetensors"))
    assert snapshot.read_bytes() == files["model.safetensors"]


def test_ui_files_stay_in_their_folder():
    """The router serves the UI folder and the Vega bundle, nothing beside them, without a token."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from graft.server import ui_routes

    app = FastAPI()
    app.include_router(ui_routes.router)
    client = TestClient(app)
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
    index = client.get("/ui/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html") and "app.js" in index.text
    assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert "window.vegaEmbed" in client.get("/ui/vendor/vega.js").text
    for sneaky in ["/ui/../ui_routes.py", "/ui/%2e%2e/ui_routes.py", "/ui/..%2fui_routes.py", "/ui//etc/passwd", "/ui/missing.js"]:
        assert client.get(sneaky).status_code == 404, sneaky
