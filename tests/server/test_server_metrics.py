"""Every finished request: a row in the database and samples in /metrics; read back as JSON."""

from __future__ import annotations

import re

import httpx
import openai
import pytest

from graft.monitor.requests import RequestLog

ASK = [{"role": "user", "content": "What colour is the sky?"}]


@pytest.fixture(scope="module")
def fresh(serve, served_pool, tmp_path_factory):
    """A server of its own (own registry, own database file), no token."""
    url, app = serve(served_pool, tmp_path_factory.mktemp("metrics"))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    base = served_pool.base_id
    client.chat.completions.create(model="alpha", messages=ASK, max_tokens=6, temperature=0)
    list(client.chat.completions.create(model="alpha", messages=ASK, max_tokens=5, temperature=0, stream=True))
    client.chat.completions.create(model=base, messages=ASK, max_tokens=4, temperature=0)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=ASK)
    return url, app


def sample(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    assert found, f"{name}{{{want}}} not in /metrics"
    return float(found.group(1))


def test_metrics_count_requests_and_tokens(fresh, served_pool):
    url, _ = fresh
    r = httpx.get(f"{url}/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert sample(text, "graft_requests_total", model="alpha", status="ok") == 2
    assert sample(text, "graft_requests_total", model=served_pool.base_id, status="ok") == 1
    assert sample(text, "graft_completion_tokens_total", model="alpha") == 11
    assert sample(text, "graft_request_latency_seconds_count", model="alpha") == 2
    assert sample(text, "graft_time_to_first_token_seconds_count", model="alpha") == 2
    assert sample(text, "graft_completion_tokens_per_second_count", model="alpha") == 2
    assert sample(text, "graft_requests_in_progress", model="alpha") == 0
    assert "nope" not in text  # unknown models are client errors, not label values


def test_rows_land_in_the_database(fresh, served_pool, lora_folder):
    url, app = fresh
    rows = RequestLog(app.state.settings.db).recent()
    assert [(r["model"], r["stream"], r["completion_tokens"]) for r in rows] == [
        (served_pool.base_id, False, 4), ("alpha", True, 5), ("alpha", False, 6)]
    alpha = rows[-1]
    assert alpha["adapter"] == str(lora_folder) and alpha["base"] == served_pool.base
    assert alpha["prompt"] == "What colour is the sky?" and alpha["status"] == "ok"
    assert alpha["prompt_tokens"] > 5 and alpha["latency_s"] >= alpha["first_token_s"] > 0 and alpha["tokens_per_s"] > 0
    assert rows[0]["adapter"] is None

    listed = httpx.get(f"{url}/v1/monitor/requests", params={"model": "alpha", "limit": 1}).json()["data"]
    assert [r["id"] for r in listed] == [rows[1]["id"]]


def test_summary_per_model(fresh, served_pool):
    summary = {s["model"]: s for s in httpx.get(f"{fresh[0]}/v1/monitor/summary").json()["data"]}
    assert set(summary) == {"alpha", served_pool.base_id}
    alpha = summary["alpha"]
    assert (alpha["requests"], alpha["errors"], alpha["completion_tokens"]) == (2, 0, 11)
    assert 0 < alpha["latency_p50_s"] <= alpha["latency_p95_s"] and alpha["tokens_per_s_mean"] > 0


def test_prompts_stay_out_of_the_log_when_asked(serve, served_pool, tmp_path):
    url, app = serve(served_pool, tmp_path, log_prompts=False)
    openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0).chat.completions.create(
        model="alpha", messages=ASK, max_tokens=2)
    assert RequestLog(app.state.settings.db).recent()[0]["prompt"] is None


def test_a_failed_generation_is_recorded_as_an_error(serve, served_pool, tmp_path, monkeypatch):
    url, app = serve(served_pool, tmp_path)
    model = served_pool.model("alpha")

    def broken(**kwargs):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(model, "generate", broken)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="alpha", messages=ASK, max_tokens=2)
    with pytest.raises(openai.APIError, match="internal error"):
        list(client.chat.completions.create(model="alpha", messages=ASK, max_tokens=2, stream=True))
    rows = RequestLog(app.state.settings.db).recent()
    assert [(r["status"], r["stream"]) for r in rows] == [("error", True), ("error", False)]
    assert rows[0]["error"] == "RuntimeError: out of memory, say"
    assert sample(httpx.get(f"{url}/metrics").text, "graft_requests_total", model="alpha", status="error") == 2
