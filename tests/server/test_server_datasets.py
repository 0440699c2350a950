"""/api/datasets against graft's loaders: good files in three formats, a bad row named and nothing
stored, the size limit, names that try to leave the folder, preview, list and delete."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from graft.server import ServerSettings, datasets_api, errors

ROWS = [{"instruction": f"Name colour {i}.", "input": "", "output": f"colour {i}"} for i in range(5)]


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "datasets"


@pytest.fixture
def client(folder, tmp_path):
    # as create_app: a small body limit for the whole app, the upload limit for this router
    settings = ServerSettings(datasets_dir=str(folder), max_upload_bytes=4000, max_request_bytes=1000)
    app = FastAPI(max_body_size=settings.max_request_bytes)
    errors.install(app)
    app.state.settings = settings
    app.include_router(datasets_api.router, max_body_size=datasets_api.body_limit(settings))
    return TestClient(app)


def upload(client, filename, content, **form):
    return client.post("/api/datasets", files={"file": (filename, content)}, data=form)


def stored(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


@pytest.mark.parametrize("filename,content", [
    ("alpaca.json", json.dumps(ROWS)),
    ("alpaca.jsonl", "\n".join(json.dumps(r) for r in ROWS)),
    ("alpaca.csv", "instruction,input,output\n" + "".join(f"Name colour {i}.,,colour {i}\n" for i in range(5))),
])
def test_upload_good_files(client, folder, filename, content):
    r = upload(client, filename, content)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == filename and body["format"] == "alpaca" and body["rows"] == 5
    assert body["bytes"] == len(content.encode()) and body["uploaded"]
    assert stored(folder) == [filename]
    assert client.get(f"/api/datasets/{filename}").json() == body


def test_malformed_row_is_named_and_nothing_is_stored(client, folder):
    rows = ROWS[:3] + [{"instruction": "", "input": "", "output": "x"}] + ROWS[3:]
    r = upload(client, "orders.json", json.dumps(rows))
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert "orders.json row 4" in message and "instruction" in message, message
    assert str(folder) not in message  # the dataset's name, not where the server keeps it
    assert stored(folder) == [] and list(folder.iterdir()) == []  # no staging leftovers either


def test_unreadable_jsonl_line(client, folder):
    r = upload(client, "lines.jsonl", json.dumps(ROWS[0]) + "\n{not json\n")
    assert r.status_code == 422 and "lines.jsonl row 2" in r.json()["error"]["message"]
    assert stored(folder) == []


def test_too_large_is_413_and_not_stored(client, folder):
    big = json.dumps([{"instruction": "x" * 100, "input": "", "output": "y"}] * 60)
    assert len(big) > 4000
    r = upload(client, "big.json", big)
    assert r.status_code == 413, r.text
    assert stored(folder) == [] and list(folder.iterdir()) == []


def test_router_limit_lifts_the_app_limit(client):
    content = json.dumps([{"instruction": "x" * 100, "input": "", "output": "y"}] * 20)
    assert 1000 < len(content) < 4000
    assert upload(client, "mid.json", content).status_code == 201
    # far past both limits, refused from the declared length before the body is read
    assert upload(client, "huge.json", "x" * 100_000).status_code == 413


def test_unsupported_type(client, folder):
    r = upload(client, "notes.exe", b"MZ")
    assert r.status_code == 422 and "unsupported file type" in r.json()["error"]["message"]
    assert stored(folder) == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "a/../../b"])
def test_names_stay_inside(client, folder, name):
    r = upload(client, "x.json", json.dumps(ROWS), name=name)
    if r.status_code != 201:  # nothing usable left of the name
        assert r.status_code == 400 and stored(folder) == []
        return
    stored_name = r.json()["name"]
    assert "/" not in stored_name and stored_name.endswith(".json")
    assert (folder / stored_name).resolve().parent == folder.resolve()
    assert stored(folder) == [stored_name]


def test_lookups_cannot_leave_the_folder(client, folder, tmp_path):
    (tmp_path / "secret.json").write_text(json.dumps(ROWS))
    assert upload(client, "x.json", json.dumps(ROWS)).status_code == 201
    (folder / "link.json").symlink_to(tmp_path / "secret.json")
    for name in ["..%2Fsecret.json", "link.json", ".meta", "..", "%2E%2E%2Fsecret.json"]:
        assert client.get(f"/api/datasets/{name}").status_code == 404, name
        assert client.get(f"/api/datasets/{name}/preview").status_code == 404, name
        assert client.delete(f"/api/datasets/{name}").status_code == 404, name
    assert (tmp_path / "secret.json").exists()


def test_duplicate_name_is_409(client, folder):
    assert upload(client, "a.json", json.dumps(ROWS)).status_code == 201
    r = upload(client, "a.json", json.dumps(ROWS[:2]))
    assert r.status_code == 409
    assert client.get("/api/datasets/a.json").json()["rows"] == 5


def test_preview_list_delete(client, folder):
    upload(client, "a.json", json.dumps(ROWS))
    upload(client, "b.jsonl", "\n".join(json.dumps(r) for r in ROWS), name="colours")
    names = [d["name"] for d in client.get("/api/datasets").json()]
    assert names == ["a.json", "colours.jsonl"]

    preview = client.get("/api/datasets/colours.jsonl/preview", params={"limit": 2}).json()
    assert preview["format"] == "alpaca" and preview["total"] == 5 and len(preview["rows"]) == 2
    first = preview["rows"][0]
    assert first["row"] == 1 and first["messages"][-1] == {"role": "assistant", "content": "colour 0"}

    assert client.delete("/api/datasets/a.json").status_code == 204
    assert [d["name"] for d in client.get("/api/datasets").json()] == ["colours.jsonl"]
    assert client.get("/api/datasets/a.json").status_code == 404
    assert client.get("/api/datasets/a.json/preview").json()["error"]["code"] == "not_found"
