"""/api/models, /api/techniques and /api/estimate: the catalog, offline downloads, the registry
with its availability, and a tiny config's memory estimate. (A download job against a stand-in
Hub: tests/jobs/test_jobs_api.py.)"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from graft.server import ServerSettings, errors, models_api


@pytest.fixture(scope="module")
def client():
    app = FastAPI()
    errors.install(app)
    app.state.settings = ServerSettings()
    app.include_router(models_api.router)
    return TestClient(app)


def test_models_lists_the_catalog(client):
    rows = client.get("/api/models").json()
    bundled = {r["name"]: r for r in rows if r["source"].startswith("bundled")}
    assert "smollm2-135m-instruct" in bundled and bundled["smollm2-135m-instruct"]["params"] > 100e6


def test_download_offline_is_503(client, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = client.post("/api/models/download", json={"hub_id": "HuggingFaceTB/SmolLM2-360M-Instruct"})
    assert r.status_code == 503
    error = r.json()["error"]
    assert "not reachable" in error["message"] and error["code"] == "unavailable" and error["hint"]


@pytest.mark.parametrize("hub_id", ["../etc", "/abs/path", "noslash", "a/b/c"])
def test_download_wants_a_hub_id(client, hub_id):
    r = client.post("/api/models/download", json={"hub_id": hub_id})
    assert r.status_code == 422 and r.json()["error"]["param"] == "hub_id"


def test_techniques(client):
    from graft.techniques import get_technique

    rows = {t["name"]: t for t in client.get("/api/techniques").json()}
    lora = rows["lora"]
    assert lora["available"] and lora["why_not"] is None and lora["family"]
    r = next(o for o in lora["options"] if o["name"] == "r")
    assert r["default"] == get_technique("lora").parse({}).r and r["type"] == "int"
    qlora = rows["qlora"]
    expected = not get_technique("qlora").missing()
    assert qlora["available"] is expected
    assert (qlora["why_not"] is None) if expected else qlora["why_not"].startswith("needs ")


def tiny(tiny_model_dir, **sections):
    config = {"model": {"name": str(tiny_model_dir)}, "data": {"path": "unused.json", "max_length": 64},
              "technique": {"name": "lora", "r": 4}, "train": {"batch_size": 2}}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    return config


def test_estimate_tiny_config(client, tiny_model_dir):
    r = client.post("/api/estimate", json=tiny(tiny_model_dir))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] > 0 and body["fits"] is True and body["task"] == "causal-lm"
    assert body["breakdown"] and all(isinstance(v, int) for v in body["breakdown"].values())
    assert body["device"]["kind"] == "cpu" and body["advice"] == []


def test_estimate_that_does_not_fit_advises(client, tiny_model_dir):
    body = client.post("/api/estimate", json=tiny(tiny_model_dir, memory={"vram": "3GiB"},
                                                  train={"batch_size": 64}, data={"max_length": 4096})).json()
    assert body["fits"] is False and body["device"]["total_bytes"] == 3 * 1024**3
    assert body["advice"] and all(a["text"] and a["total_bytes"] < body["total"] for a in body["advice"])


@pytest.mark.parametrize("change,param", [
    ({"train": {"lr": -1}}, "train.lr"),
    ({"train": {"bogus": 1}}, "train.bogus"),
    ({"technique": {"name": "nope"}}, "technique"),
    ({"technique": {"r": "many"}}, "technique"),
    ({"data": {"path": None}}, "data.path"),
])
def test_estimate_bad_config_names_the_field(client, tiny_model_dir, change, param):
    r = client.post("/api/estimate", json=tiny(tiny_model_dir, **change))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param


def test_estimate_unknown_model_downloads_nothing(client, monkeypatch, tmp_path):
    import graft.models.hub as hub

    monkeypatch.setattr(hub, "download", lambda *a, **k: pytest.fail("the estimate downloaded"))
    r = client.post("/api/estimate", json=tiny("no-org/no-such-model"))
    assert r.status_code == 404 and "not downloaded" in r.json()["error"]["message"]
    r = client.post("/api/estimate", json=tiny(tmp_path))  # a folder, but no model in it
    assert r.status_code == 404
