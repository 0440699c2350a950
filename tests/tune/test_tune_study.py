"""A tuning study on the tiny model: the baseline first, a resumed study adding trials, a hopeless
trial pruned at its second eval, a trial that cannot train recorded as failed while the search goes on,
trials in the results database and the dashboard API, best.yaml and trials.json."""

from __future__ import annotations

import json

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from graft.bench.record import METRICS
from graft.bench.store import Store
from graft.config import RunConfig
from graft.errors import ConfigError, DataError
from graft.server import ServerSettings, errors, runs_api
from graft.tune import Space, tune
from graft.tune.study import with_eval
from testkit import Recorder

optuna = pytest.importorskip("optuna")  # the `tune` extra

STEPS, EVERY = 6, 2
SPACE = {
    "train.lr": {"type": "float", "low": 1e-6, "high": 2e-2, "log": True},
    "technique.r": [4, 8],
    "technique.target_modules": {"choices": ["all-linear", ["q_proj", "v_proj"], ["no_such_module"]]},
}
# trials 1-3, enqueued so that each outcome is certain: a good lr, a hopeless one, modules the model lacks
GOOD = {"train.lr": 4e-3, "technique.r": 4, "technique.target_modules": "all-linear"}
HOPELESS = {"train.lr": 1e-6, "technique.r": 8, "technique.target_modules": "all-linear"}
NO_MODULES = {"train.lr": 5e-3, "technique.r": 8, "technique.target_modules": '["no_such_module"]'}


def base_config(helpers, model_dir, data, out, **overrides) -> RunConfig:
    return helpers.tiny_config(model_dir, data, out, **{
        "train.max_steps": STEPS, "train.eval_every": EVERY, "data.eval_size": 8,
        "technique.target_modules": ["q_proj", "v_proj"], **overrides})


@pytest.fixture(scope="module")
def study(tiny_model_dir, tmp_path_factory, helpers):
    """Session 1 runs the baseline alone; session 2 resumes the study with three enqueued trials and
    one the sampler picks."""
    tmp = tmp_path_factory.mktemp("tune")
    data = tmp / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    cfg = base_config(helpers, tiny_model_dir, data, tmp / "runs")
    space = Space.from_dict(SPACE, source="space.yaml")
    store = Store(tmp / "graft.db")
    first = tune(cfg, space, trials=1, name="colours", store=store, progress=Recorder())
    storage = f"sqlite:///{tmp / 'runs' / 'colours' / 'optuna.db'}"
    enqueued = optuna.load_study(study_name="colours", storage=storage)
    for params in (GOOD, HOPELESS, NO_MODULES):
        enqueued.enqueue_trial(params)
    progress = Recorder()
    result = tune(cfg, space, trials=4, name="colours", store=store, progress=progress)
    return {"tmp": tmp, "cfg": cfg, "space": space, "store": store, "first": first, "result": result,
            "progress": progress, "storage": storage, "data": data}


def test_trial_zero_is_the_config_as_given(study):
    first = study["first"]
    [t0] = first.trials
    assert t0["number"] == 0 and t0["baseline"] and t0["state"] == "completed"
    assert t0["params"] == {"train.lr": 5e-3, "technique.r": 8, "technique.target_modules": ["q_proj", "v_proj"]}
    ran = RunConfig.load(study["tmp"] / "runs" / "colours" / "trial-000" / "config.yaml")
    assert ran.model_dump(exclude={"output_dir", "run_name"}) == study["cfg"].model_dump(exclude={"output_dir", "run_name"})
    summary = json.loads((study["tmp"] / "runs" / "colours" / "trial-000" / "summary.json").read_text())
    assert t0["eval_loss"] == summary["eval_loss"] and t0["step"] == STEPS


def test_resumed_study_adds_trials_and_runs_the_baseline_once(study):
    trials = study["result"].trials
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4]
    assert [t["baseline"] for t in trials] == [True, False, False, False, False]
    assert trials[0] == study["first"].trials[0]
    assert trials[1]["params"] == {**GOOD} and trials[1]["state"] == "completed"
    # the sampled trial lies in the space
    p = trials[4]["params"]
    assert 1e-6 <= p["train.lr"] <= 2e-2 and p["technique.r"] in (4, 8)
    assert p["technique.target_modules"] in ("all-linear", ["q_proj", "v_proj"], ["no_such_module"])
    assert trials[4]["state"] in ("completed", "pruned", "failed")
    # each trial that got as far as its run folder ran with exactly its params
    for t in trials:
        saved = study["tmp"] / "runs" / "colours" / f"trial-{t['number']:03d}" / "config.yaml"
        if t["state"] == "failed" and not saved.exists():
            continue
        ran = yaml.safe_load(saved.read_text())
        assert ran["train"]["lr"] == pytest.approx(t["params"]["train.lr"]) and ran["technique"]["r"] == t["params"]["technique.r"]


def test_hopeless_trial_is_pruned_at_its_second_eval(study):
    pruned = study["result"].trials[2]
    assert pruned["state"] == "pruned" and pruned["error"] is None
    assert pruned["step"] == 2 * EVERY  # the first eval is the pruner's warm-up; the last step never prunes
    run = study["tmp"] / "runs" / "colours" / "trial-002"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["steps"] == 2 * EVERY and "pruned at step 4" in summary["reason"]
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in evals if e["type"] == "eval" and e["step"] > 0]
    assert [e["step"] for e in evals] == [2, 4] and pruned["eval_loss"] == evals[-1]["eval_loss"]
    # worse than the completed trials at that step: what the median pruner compares
    study_ = optuna.load_study(study_name="colours", storage=study["storage"])
    at_4 = [t.intermediate_values[4] for t in study_.trials[:2]]
    assert pruned["eval_loss"] > max(at_4)


def test_trial_that_cannot_train_fails_and_the_search_goes_on(study):
    failed = study["result"].trials[3]
    assert failed["state"] == "failed" and failed["eval_loss"] is None
    assert "no_such_module" in failed["error"]
    assert study["result"].trials[4]["number"] == 4  # the study went on
    lines = [line for line in study["progress"].logs if line.startswith("trial #3")]
    assert len(lines) == 1 and "FAILED" in lines[0] and "no_such_module" in lines[0]


def test_best_is_no_worse_than_the_baseline_and_best_yaml_reruns_it(study):
    result = study["result"]
    completed = [t for t in result.trials if t["state"] == "completed"]
    assert result.best["eval_loss"] == min(t["eval_loss"] for t in completed)
    assert result.best["eval_loss"] <= result.baseline["eval_loss"]
    best = RunConfig.load(result.best_config)
    assert best.output_dir == study["cfg"].output_dir and best.run_name == study["cfg"].run_name
    ran = RunConfig.load(result.folder / f"trial-{result.best['number']:03d}" / "config.yaml")
    assert best.model_dump(exclude={"output_dir", "run_name"}) == ran.model_dump(exclude={"output_dir", "run_name"})
    assert result.best_config.read_text().startswith(f"# graft tune colours: trial {result.best['number']}, eval loss")
    listed = json.loads(result.trials_file.read_text())
    assert listed["trials"] == result.trials and listed["best"] == result.best and listed["benchmark"] == "tune-colours"


def test_a_line_per_trial_with_the_best_so_far(study):
    lines = [line for line in study["progress"].logs if line.startswith("trial #")]
    assert [line.split()[1] for line in lines] == ["#1", "#2", "#3", "#4"]
    assert "-> eval loss" in lines[0] and "; best " in lines[0]
    assert "-> pruned at step 4" in lines[1]
    assert sum(1 for e in study["progress"].events if e[:2] == ("advance", "trials")) == 4
    assert any(e[:2] == ("advance", "train") for e in study["progress"].events)  # the training bar passes through


def test_trials_are_benchmark_records(study):
    records = study["store"].records("tune-colours")
    assert [r["cell"] for r in records] == [f"trial-{n:03d}" for n in range(5)]
    assert [r["status"] for r in records] == [t["state"] for t in study["result"].trials]
    for record, trial in zip(records, study["result"].trials):
        assert record["trial"]["number"] == trial["number"] and record["trial"]["baseline"] == trial["baseline"]
        assert record["params"] == trial["params"] and record["label"].startswith(f"#{trial['number']}")
    done = records[0]
    assert set(done["metrics"]) == set(METRICS) and done["metrics"]["eval_loss"] == done["trial"]["value"]
    assert done["metrics"]["steps"] == STEPS and len(done["trace"]) == STEPS
    assert [e["step"] for e in done["evals"]] == [0, 2, 4, 6]
    assert records[0]["label"].startswith("#0 baseline")
    pruned = records[2]
    assert pruned["error"] is None and pruned["trial"]["step"] == 4 and pruned["metrics"]["steps"] == 4
    failed = records[3]
    assert "no_such_module" in failed["error"] and failed["trial"]["value"] is None


def test_dashboard_api_shows_the_trials_and_the_tuning_chart(study):
    app = FastAPI()
    errors.install(app)
    app.state.settings = ServerSettings(runs_root=str(study["tmp"] / "runs"), db=str(study["tmp"] / "graft.db"))
    app.include_router(runs_api.router)
    client = TestClient(app)
    listed = {b["name"]: b for b in client.get("/api/benchmarks").json()}
    assert listed["tune-colours"]["cells"] == 5
    detail = client.get("/api/benchmarks/tune-colours").json()
    assert [r["status"] for r in detail["records"]] == [t["state"] for t in study["result"].trials]
    assert list(detail["charts"])[0] == "tuning"
    rows = detail["charts"]["tuning"]["data"]["values"]
    assert {r["outcome"] for r in rows if r["eval_loss"] is not None} >= {"baseline", "completed", "pruned"}
    assert rows[-1]["best"] == pytest.approx(study["result"].best["eval_loss"])


def test_a_changed_config_does_not_resume_the_study(study, helpers, tiny_model_dir):
    changed = base_config(helpers, tiny_model_dir, study["data"], study["tmp"] / "runs", **{"train.max_steps": 8})
    with pytest.raises(ConfigError, match=r"another config or space \(differs at config.train.max_steps\)"):
        tune(changed, study["space"], trials=1, name="colours", store=study["store"])
    narrower = Space.from_dict({**SPACE, "technique.r": [8]})
    with pytest.raises(ConfigError, match=r"differs at space.technique.r.choices"):
        tune(study["cfg"], narrower, trials=1, name="colours", store=study["store"])
    assert not (study["tmp"] / "runs" / "colours" / "trial-005").exists()


def test_bad_space_key_fails_before_anything_is_written(helpers, tiny_model_dir, tmp_path):
    cfg = base_config(helpers, tiny_model_dir, tmp_path / "toy.json", tmp_path / "runs")
    with pytest.raises(ConfigError, match=r"^space.yaml: train.lrr: .*unknown option"):
        tune(cfg, Space.from_dict({"train.lrr": [0.1, 0.2]}, source="space.yaml"), trials=2, name="x",
             store=tmp_path / "graft.db")
    assert not (tmp_path / "runs").exists()


def test_trials_left_running_by_a_killed_process_are_failed_on_resume(helpers, tiny_model_dir, tmp_path):
    cfg = base_config(helpers, tiny_model_dir, tmp_path / "toy.json", tmp_path / "runs")
    space, store = Space.from_dict(SPACE), Store(tmp_path / "graft.db")
    tune(cfg, space, trials=0, name="stale", baseline=False, store=store)
    storage = f"sqlite:///{tmp_path / 'runs' / 'stale' / 'optuna.db'}"
    left = optuna.load_study(study_name="stale", storage=storage).ask()  # as a killed process leaves it
    space.suggest(left)
    progress = Recorder()
    result = tune(cfg, space, trials=0, name="stale", baseline=False, store=store, progress=progress)
    [row] = result.trials
    assert row["state"] == "failed" and row["error"].startswith("interrupted")
    [record] = store.records("tune-stale")
    assert record["status"] == "failed" and record["error"].startswith("interrupted") and record["params"]
    assert any("left running by an earlier process" in line for line in progress.logs)


def test_a_data_error_stops_the_study_after_one_trial(helpers, tiny_model_dir, tmp_path):
    """The data cannot be searched, so every trial would fail the same way: the first one says why."""
    cfg = base_config(helpers, tiny_model_dir, tmp_path / "missing.json", tmp_path / "runs")
    store = Store(tmp_path / "graft.db")
    with pytest.raises(DataError, match="data file not found"):
        tune(cfg, Space.from_dict(SPACE), trials=3, name="d", store=store)
    [record] = store.records("tune-d")
    assert record["status"] == "failed" and "data file not found" in record["error"]
    listed = json.loads((tmp_path / "runs" / "d" / "trials.json").read_text())
    assert [t["state"] for t in listed["trials"]] == ["failed"]


def test_timeout_starts_no_new_trial(helpers, tiny_model_dir, tmp_path):
    cfg = base_config(helpers, tiny_model_dir, tmp_path / "toy.json", tmp_path / "runs")
    progress = Recorder()
    result = tune(cfg, Space.from_dict(SPACE), trials=3, name="t", timeout=0, store=tmp_path / "graft.db",
                  progress=progress)
    assert result.trials == [] and result.best is None and result.best_config is None
    assert any(line.startswith("timeout: 0 s passed; 0 of 3 trials ran") for line in progress.logs)


def test_eval_rows_and_eval_every(helpers, tmp_path):
    cfg = helpers.tiny_config("m", tmp_path / "d.json", tmp_path, **{"train.max_steps": 20})
    progress = Recorder()
    assert with_eval(cfg, progress).train.eval_every == 5  # a quarter of max_steps
    assert "evaluating every 5 steps" in progress.logs[0]
    with pytest.raises(ConfigError, match="holds out no eval rows"):
        with_eval(helpers.tiny_config("m", "d.json", tmp_path, **{"data.eval_size": 0}), progress)
    with pytest.raises(ConfigError, match="train.eval_every is not set"):
        with_eval(helpers.tiny_config("m", "d.json", tmp_path, **{"train.max_steps": None}), progress)
