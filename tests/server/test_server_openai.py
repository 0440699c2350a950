"""The OpenAI-compatible routes, driven by the official `openai` client against a real server."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from testkit import TOKEN

ASK = [{"role": "user", "content": "What colour is the sky?"}]
TOKENS = 12


def streamed(client, model: str, **options) -> tuple[str, list]:
    chunks = list(client.chat.completions.create(model=model, messages=ASK, max_tokens=TOKENS, temperature=0,
                                                 stream=True, **options))
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks


def test_models_lists_the_base_and_every_adapter(client, served_pool):
    models = {m.id: m for m in client.models.list()}
    base = served_pool.base_id
    assert set(models) == {base, "colours", "alpha"}
    assert models["colours"].model_extra["technique"] == "lora" and models["colours"].model_extra["shared"] is True
    assert models[base].model_extra["adapter"] is None and models[base].owned_by == "graft"


def test_adapter_and_base_stream_from_one_server(client, served_pool):
    texts = {}
    for model in ("alpha", served_pool.base_id, "colours"):
        text, chunks = streamed(client, model)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason == "length"  # 12 tokens of a random model: out of tokens
        assert all(c.object == "chat.completion.chunk" and c.model == model for c in chunks)
        assert len({c.id for c in chunks}) == 1
        whole = client.chat.completions.create(model=model, messages=ASK, max_tokens=TOKENS, temperature=0)
        assert whole.object == "chat.completion" and whole.model == model
        assert whole.choices[0].message.content == text, model  # streamed == non-streamed
        assert text == served_pool.complete(model, ASK, max_new_tokens=TOKENS).text  # == the pool itself
        assert whole.usage.completion_tokens == TOKENS and whole.choices[0].finish_reason == "length"
        texts[model] = text
    assert texts["alpha"] != texts[served_pool.base_id]


def test_stream_options_include_usage(client):
    text, chunks = streamed(client, "alpha", stream_options={"include_usage": True})
    final = chunks[-1]
    assert final.choices == [] and final.usage.completion_tokens == TOKENS
    assert final.usage.total_tokens == final.usage.prompt_tokens + TOKENS > TOKENS


def test_options_reach_the_model(client, served_pool):
    full = served_pool.complete("alpha", ASK, max_new_tokens=TOKENS).text
    stop = full[4:7]
    cut = client.chat.completions.create(model="alpha", messages=ASK, max_completion_tokens=TOKENS, temperature=0,
                                         stop=[stop])
    assert cut.choices[0].message.content == full[: full.index(stop)] and cut.choices[0].finish_reason == "stop"
    short = client.chat.completions.create(model="alpha", messages=ASK, max_tokens=TOKENS, max_completion_tokens=3,
                                           temperature=0)
    assert short.usage.completion_tokens == 3
    seeded = [client.chat.completions.create(model="alpha", messages=ASK, max_tokens=TOKENS, temperature=1.5, seed=s)
              .choices[0].message.content for s in (3, 3)]
    assert seeded[0] == seeded[1]
    parts = [{"role": "developer", "content": "Be brief."},
             {"role": "user", "content": [{"type": "text", "text": "What colour "}, {"type": "text", "text": "is the sky?"}]}]
    expected = served_pool.complete("alpha", [{"role": "system", "content": "Be brief."}, *ASK], max_new_tokens=TOKENS)
    got = client.chat.completions.create(model="alpha", messages=parts, max_tokens=TOKENS, temperature=0)
    assert got.choices[0].message.content == expected.text


def test_unknown_model_is_404_naming_the_known(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="nope", messages=ASK)
    error = caught.value.body
    assert error["code"] == "model_not_found" and "alpha" in error["message"] and "colours" in error["message"]


@pytest.mark.parametrize("options, param", [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages.0.content"),
])
def test_what_cannot_be_served_is_a_clear_400(client, options, param):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**{"model": "alpha", "messages": ASK, **options})
    assert caught.value.body["param"] == param and caught.value.body["type"] == "invalid_request_error"


@pytest.mark.parametrize("body, param", [
    ({"model": "alpha", "messages": ASK, "temperature": 5}, "temperature"),
    ({"model": "alpha", "messages": []}, "messages"),
    ({"model": "alpha", "messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
    ({"messages": ASK}, "model"),
    (b"{not json", None),
])
def test_malformed_requests_are_422_without_traceback(server, body, param):
    sent = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{server[0]}/v1/chat/completions", **sent,
                   headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == param and "Traceback" not in r.text


def test_a_prompt_past_the_context_is_400(client):
    with pytest.raises(openai.BadRequestError, match="reads at most 512"):
        client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "sky " * 600}])


def test_a_client_that_hangs_up_frees_the_model(server, client, served_pool):
    url, app = server
    body = {"model": "colours", "messages": ASK, "max_tokens": 400, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.monotonic() + 20
    while not app.state.monitor.log.recent(5, "colours") or app.state.monitor.log.recent(1, "colours")[0]["status"] != "error":
        assert time.monotonic() < deadline, "the server never noticed the client leaving"
        time.sleep(0.05)
    assert app.state.monitor.log.recent(1, "colours")[0]["error"] == "the client disconnected"
    text, _ = streamed(client, served_pool.base_id)  # the shared model is free and back on the base
    assert text == served_pool.complete(served_pool.base_id, ASK, max_new_tokens=TOKENS).text
