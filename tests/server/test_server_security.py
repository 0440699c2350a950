"""The bearer token, the localhost-only rule without one, the request size limit, and errors without tracebacks."""

from __future__ import annotations

import httpx
import openai
import pytest

from testkit import TOKEN
from graft.errors import ConfigError
from graft.server import ServerSettings
from graft.server.security import check_bind

ASK = [{"role": "user", "content": "hi"}]


def test_a_wrong_token_is_an_authentication_error(server):
    client = openai.OpenAI(base_url=f"{server[0]}/v1", api_key="wrong-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="alpha", messages=ASK, max_tokens=2)
    assert caught.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    # the openai client always sends a key; without one the answer is the same 401
    r = httpx.post(f"{server[0]}/v1/chat/completions", json={"model": "alpha", "messages": ASK})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/v1/models", "/metrics", "/v1/monitor/requests", "/v1/monitor/summary"])
def test_every_route_but_health_wants_the_token(server, path):
    url = server[0]
    assert httpx.get(f"{url}{path}").status_code == 401
    assert httpx.get(f"{url}{path}", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}


def test_without_a_token_the_server_is_open(serve, served_pool, tmp_path):
    url, _ = serve(served_pool, tmp_path)
    assert httpx.get(f"{url}/v1/models").status_code == 200


def test_docs_describe_the_api(server):
    spec = httpx.get(f"{server[0]}/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/models", "/metrics", "/v1/monitor/summary", "/health"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "swagger" in httpx.get(f"{server[0]}/docs").text.lower()


def test_a_body_past_the_limit_is_413(serve, served_pool, tmp_path):
    url, _ = serve(served_pool, tmp_path, max_request_bytes=2000)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "sky " * 1000}])
    assert caught.value.status_code == 413

    def chunked():  # no Content-Length: the server counts as the body arrives
        yield from (b"x" * 500 for _ in range(10))

    r = httpx.post(f"{url}/v1/chat/completions", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    ok = client.chat.completions.create(model="alpha", messages=ASK, max_tokens=2)
    assert ok.usage.completion_tokens <= 2


def test_binding_beyond_localhost_needs_a_token():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(ServerSettings(host=host))
    for host in ("0.0.0.0", "192.168.1.5", "example.org", "::"):
        with pytest.raises(ConfigError, match="without an API token"):
            check_bind(ServerSettings(host=host))
        check_bind(ServerSettings(host=host, token="t"))


def test_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("GRAFT_API_TOKEN", "from-env")
    assert ServerSettings.from_env().token.get_secret_value() == "from-env"
    assert ServerSettings.from_env(token="given").token.get_secret_value() == "given"
    monkeypatch.setenv("GRAFT_API_TOKEN", "")
    assert ServerSettings.from_env().token is None
    assert "from-env" not in repr(ServerSettings(token="from-env"))
    assert ServerSettings(token="").token is None  # an empty token guards nothing: it is no token


def test_a_crash_is_a_500_without_traceback(server, monkeypatch):
    url, app = server

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.state.pool, "models", broken)
    r = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 500 and r.json()["error"]["type"] == "server_error"
    assert "Traceback" not in r.text and "secret internals" not in r.text
