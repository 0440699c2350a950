"""A server started without a model: the default base loads at the first request, and finished runs join
the served models by name (the playground's picker)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from graft.server import ServerSettings, create_app


def _app(tiny_model_dir, tuned_run, tmp_path):
    settings = ServerSettings(default_model=str(tiny_model_dir), runs_root=str(tuned_run.parent), db=str(tmp_path / "r.db"),
                              workers=0)
    return create_app(None, settings)


def test_lazy_base_then_a_run_added_by_name(tiny_model_dir, tuned_run, tmp_path):
    app = _app(tiny_model_dir, tuned_run, tmp_path)
    assert app.state.pool is None
    with TestClient(app) as client:
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [tiny_model_dir.name]
        added = client.post("/api/serving/adapters", json={"run": tuned_run.name})
        assert added.status_code == 201 and added.json()["shared"] is True
        assert added.json()["adapter"] == str(tuned_run.resolve())
        assert [m["id"] for m in client.get("/api/serving").json()] == [tiny_model_dir.name, tuned_run.name]
        ask = {"messages": [{"role": "user", "content": "What colour is the sky?"}], "temperature": 0, "max_tokens": 8}
        base = client.post("/v1/chat/completions", json={**ask, "model": tiny_model_dir.name}).json()
        tuned = client.post("/v1/chat/completions", json={**ask, "model": tuned_run.name}).json()
        assert base["choices"][0]["message"]["content"] != tuned["choices"][0]["message"]["content"]
        again = client.post("/api/serving/adapters", json={"run": tuned_run.name})
        assert again.status_code == 201  # already served: the same entry, not an error


def test_unknown_or_unsafe_run_names(tiny_model_dir, tuned_run, tmp_path):
    with TestClient(_app(tiny_model_dir, tuned_run, tmp_path)) as client:
        missing = client.post("/api/serving/adapters", json={"run": "nope"})
        assert missing.status_code == 404 and "no run 'nope'" in missing.json()["error"]["message"]
        escape = client.post("/api/serving/adapters", json={"run": ".."})
        assert escape.status_code == 400
