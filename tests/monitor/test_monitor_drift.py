"""`graft monitor drift`: a tiny trained run, served prompts in a tmp database, the real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graft.cli import monitor
from graft.models.embed import Embedder
from graft.monitor.drift import drift_report
from graft.monitor.requests import RequestLog, Served
from graft.monitor.sources import TooFewPromptsError

SHAKESPEARE = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare" / "input.txt"
THINGS = ["apple", "banana", "grass", "sky", "snow", "coal", "orange", "plum", "lemon", "cherry", "leaf", "sea"]
# the training phrasings (tests/conftest.py QUESTIONS), and a few a user might type instead
ASKED = ["What colour is the {t}?", "Say the colour of the {t}.", "Which colour has the {t}?", "Colour of the {t}?",
         "What's the colour of the {t}?", "Tell me the colour of the {t}.", "What color is the {t}?"]


def in_distribution(n: int = 30) -> list[str]:
    return [ASKED[i % len(ASKED)].format(t=THINGS[(5 * i) % len(THINGS)]) for i in range(n)]


def shakespeare(n: int = 30) -> list[str]:
    lines = [line for line in SHAKESPEARE.read_text().splitlines() if len(line) > 25]
    return lines[:n]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir, helpers) -> Path:
    from graft.train.recipe import train

    tmp = tmp_path_factory.mktemp("drift")
    data = tmp / "toy_alpaca.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    return train(helpers.tiny_config(tiny_model_dir, data, tmp / "runs", **{"train.max_steps": 2})).run_dir


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def log_with(db: Path, prompts: list[str], adapter: str | None, model: str = "toy") -> RequestLog:
    log = RequestLog(db)
    for p in prompts:
        log.record(Served(model=model, base="tiny", adapter=adapter, prompt=p, prompt_tokens=len(p.split()),
                          completion_tokens=5, latency_s=0.1, first_token_s=0.02, tokens_per_s=50.0, stream=False))
    return log


def test_similar_prompts_do_not_drift(run_dir, tmp_path, embedder):
    # the server may name the run folder or its adapter/ folder: both count as this run
    log = log_with(tmp_path / "g.db", in_distribution(20), str(run_dir.resolve()))
    log_with(tmp_path / "g.db", in_distribution(30)[20:], str((run_dir / "adapter").resolve()))
    report = drift_report(run_dir, log, embedder=embedder)

    assert report["counts"]["served"] == 30 and report["counts"]["train"] == 56  # 64 rows, 8 held out
    assert not report["drifted"], report["reasons"]
    assert report["tests"]["embedding"]["p_value"] > 0.05
    assert report["verdict"].startswith("no drift")
    print("no-drift p-values:", {k: t["p_value"] for k, t in report["tests"].items()})

    files = {k: Path(v) for k, v in report["files"].items()}
    assert all(p.is_file() and p.parent == run_dir / "monitor" for p in files.values())
    assert files["json"].name.startswith("drift-") and files["svg"].read_text().lstrip().startswith("<svg")
    assert files["png"].read_bytes()[:4] == b"\x89PNG"
    assert json.loads(files["json"].read_text())["drifted"] is False
    spec = json.loads(files["spec"].read_text())
    assert spec["$schema"].endswith("vega-lite/v5.json") and len(spec["hconcat"]) == 2
    groups = [row["group"] for row in spec["data"]["values"]]
    assert groups.count("train") == 56 and groups.count("served") == 30


def test_different_prompts_drift(run_dir, tmp_path, embedder):
    log = log_with(tmp_path / "g.db", shakespeare(), adapter=None, model="poet")
    report = drift_report(run_dir, log, model_id="poet", embedder=embedder)

    tests = report["tests"]
    assert report["drifted"] and tests["embedding"]["p_value"] < 0.05
    assert report["verdict"].startswith("drift detected") and "MMD p=" in report["verdict"]
    assert all(t["fires"] for t in tests.values())
    assert [r.split(":")[0] for r in report["reasons"]] == ["embedding", "length", "vocabulary"]
    assert report["bonferroni"]["fires"] == ["embedding", "length", "vocabulary"]
    print("drift p-values:", {k: t["p_value"] for k, t in tests.items()})


def test_too_few_served_prompts_is_a_clear_error(run_dir, tmp_path, embedder):
    log = log_with(tmp_path / "g.db", in_distribution(7), str(run_dir.resolve()))
    with pytest.raises(TooFewPromptsError, match="only 7 served prompts .* needs at least 20"):
        drift_report(run_dir, log, embedder=embedder)
    with pytest.raises(TooFewPromptsError, match="only 0 served prompts"):
        drift_report(run_dir, log, model_id="nobody", embedder=embedder)


def test_cli_exit_codes_and_retraining(run_dir, tmp_path, helpers):
    runner = CliRunner()
    same, other = tmp_path / "same.db", tmp_path / "other.db"
    log_with(same, in_distribution(), str(run_dir.resolve()))
    log_with(other, shakespeare(), str(run_dir.resolve()))
    new_data = tmp_path / "new.json"
    new_data.write_text(json.dumps(helpers.toy_rows()[:32]))
    before = set(run_dir.parent.iterdir())

    calm = runner.invoke(monitor.app, ["drift", str(run_dir), "--db", str(same), "--retrain", "--data", str(new_data)])
    assert calm.exit_code == 0, calm.output
    assert "no drift" in calm.output and "nothing was retrained" in calm.output
    assert set(run_dir.parent.iterdir()) == before

    drifted = runner.invoke(monitor.app, ["drift", str(run_dir), "--db", str(other), "--retrain", "--data",
                                          str(new_data), "--steps", "2"])
    assert drifted.exit_code == 3, drifted.output
    assert "drift detected: served prompts differ from the training data (MMD p=" in drifted.output
    new_runs = set(run_dir.parent.iterdir()) - before
    assert len(new_runs) == 1
    new_run = new_runs.pop()
    assert new_run.name.startswith(f"{run_dir.name}-retrain-")
    assert (new_run / "adapter" / "adapter_config.json").is_file()
    assert json.loads((new_run / "summary.json").read_text())["steps"] == 2

    as_json = runner.invoke(monitor.app, ["drift", str(run_dir), "--db", str(other), "--json"])
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["drifted"] is True

    usage = runner.invoke(monitor.app, ["drift", str(run_dir), "--db", str(other), "--retrain"])
    assert "--retrain needs --data" in str(usage.exception)
    usage = runner.invoke(monitor.app, ["drift", str(run_dir), "--db", str(other), "--submit"])
    assert "--submit goes with --retrain" in str(usage.exception)

    table = runner.invoke(monitor.app, ["requests", "--db", str(other), "--limit", "3"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "Served requests" in table.output
    assert "runs/run" in table.output and table.output.count(" toy ") == 3  # newest 3 only
    assert "no served requests" in runner.invoke(monitor.app, ["requests", "--db", str(tmp_path / "none.db")]).output


def test_retraining_can_be_queued_as_a_job_for_the_web_apps_workers(run_dir, tmp_path, helpers, monkeypatch):
    from graft.jobs import JobStore
    from graft.jobs.execute import execute

    monkeypatch.delenv("GRAFT_BROKER_URL", raising=False)
    db = tmp_path / "graft.db"  # the server's database: served requests and jobs
    log_with(db, shakespeare(), str(run_dir.resolve()))
    new_data = tmp_path / "new.json"
    new_data.write_text(json.dumps(helpers.toy_rows()[:32]))
    before = set(run_dir.parent.iterdir())

    r = CliRunner().invoke(monitor.app, ["drift", str(run_dir), "--db", str(db), "--retrain", "--data", str(new_data),
                                         "--steps", "3", "--submit", "--json"])
    assert r.exit_code == 3, r.output
    queued = json.loads(r.stdout)["retrained"]
    assert set(run_dir.parent.iterdir()) == before  # nothing trained here

    store = JobStore(db)
    [job] = store.list()
    assert (job.id, job.kind, job.status) == (queued["job"], "train", "queued") and queued["announced"] is False
    assert job.spec["run_name"] == queued["run_name"] and queued["run_name"].startswith(f"{run_dir.name}-retrain-")
    assert job.spec["data"]["path"] == str(new_data.resolve()) and job.spec["train"]["max_steps"] == 3

    # what a worker of `graft serve` does with it
    result = execute(store, store.claim("test"), tmp_path / "jobs-runs")
    assert result["summary"]["steps"] == 3
    assert (tmp_path / "jobs-runs" / queued["run_name"] / "adapter" / "adapter_config.json").is_file()


def test_served_prompts_match_the_run_however_the_server_named_it(run_dir, tmp_path, monkeypatch):
    from graft.monitor.sources import served_prompts

    monkeypatch.chdir(run_dir.parent)  # a server started here, given "run" or "run/adapter"
    log = log_with(tmp_path / "g.db", in_distribution(10), "run")
    log_with(tmp_path / "g.db", in_distribution(10), "run/adapter")
    log_with(tmp_path / "g.db", in_distribution(10), str(run_dir.resolve()))
    log_with(tmp_path / "g.db", in_distribution(10), "other-run")
    prompts, total = served_prompts(run_dir, log, max_rows=25)
    assert total == 30 and len(prompts) == 25
