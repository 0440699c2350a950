"""Running a benchmark matrix: every cell a real child process on the tiny model, a crashing cell
recorded as failed while the rest complete, finished cells skipped on a re-run, the store, the
exporters and the `graft benchmark` CLI."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import pytest

import graft.bench.runner as runner
from graft.bench.export import export, to_csv, to_json, to_markdown
from graft.bench.matrix import Matrix
from graft.bench.record import METRICS
from graft.bench.runner import run_matrix
from graft.bench.store import Store
from graft.errors import ConfigError
from testkit import Recorder, run_graft

STEPS = 2


def base_config(model_dir, data) -> dict:
    return {
        "model": {"name": str(model_dir)},
        "data": {"path": str(data), "max_length": 64, "eval_size": 4, "limit": 24},
        "technique": {"name": "lora", "r": 4, "alpha": 8},
        "train": {"batch_size": 4, "lr": 5e-3, "seed": 0, "threads": 1, "scheduler": "constant",
                  "warmup_ratio": 0.0, "max_steps": STEPS},
    }


@pytest.fixture(scope="module")
def bench(tiny_model_dir, tmp_path_factory, helpers):
    """lora and ia3 on the tiny model, plus an extra lora cell whose data file does not exist: it passes
    validation when the matrix expands and fails in its child process."""
    tmp = tmp_path_factory.mktemp("bench")
    data = tmp / "toy.json"
    data.write_text(json.dumps(helpers.toy_rows()))
    missing = tmp / "no-such-data.json"
    matrix = Matrix.from_dict({"name": "tiny", **base_config(tiny_model_dir.resolve(), data),
                               "matrix": {"technique": ["lora", "ia3"]},
                               "cells": [{"technique.name": "lora", "data.path": str(missing)}]})
    store = Store(tmp / "graft.db")
    progress = Recorder()
    records = run_matrix(matrix, store, tmp / "runs", progress)
    return {"tmp": tmp, "matrix": matrix, "store": store, "records": records, "progress": progress,
            "missing": missing, "data": data}


def test_crashing_cell_fails_and_the_others_complete(bench):
    records = bench["records"]
    assert [r["status"] for r in records] == ["completed", "completed", "failed"], [r.get("error") for r in records]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert [r["params"] for r in records] == [{"technique.name": "lora"}, {"technique.name": "ia3"},
                                              {"technique.name": "lora", "data.path": str(bench["missing"])}]
    failed = records[2]
    assert failed["error"].startswith("exit 1: ")
    assert "data file not found" in failed["error"] and str(bench["missing"]) in failed["error"]
    assert failed["metrics"] is None and failed["trace"] == []
    assert all(r["error"] is None for r in records[:2])
    # the progress heard about every cell, the failure with its reason
    cells = [e[3]["cell"] for e in bench["progress"].events if e[:2] == ("advance", "cells")]
    assert len(cells) == 3 and cells[0].endswith(" ok") and cells[1].endswith(" ok")
    assert "FAILED: exit 1" in cells[2] and "data file not found" in cells[2]
    # and the child's training steps were relayed
    assert sum(1 for e in bench["progress"].events if e[:2] == ("advance", "train")) == 2 * STEPS


def test_completed_records_have_metrics_trace_and_config(bench):
    cells = bench["matrix"].expand()
    for record, cell in zip(bench["records"][:2], cells):
        m = record["metrics"]
        assert set(m) == set(METRICS)
        assert m["steps"] == STEPS
        assert m["tokens_per_s"] > 0 and m["tokens"] > 0 and m["steps_per_s"] > 0
        assert m["peak_memory_bytes"] > 0 and m["avg_memory_bytes"] > 0 and m["estimated_memory_bytes"] > 0
        assert m["trainable_params"] > 0 and m["total_params"] > m["trainable_params"]
        assert 0 < m["trainable_percent"] < 100
        assert m["train_loss"] > 0 and m["final_loss"] > 0
        assert m["eval_loss"] > 0 and m["eval_ppl"] > 1  # 4 rows held out
        assert m["wall_s"] > 0 and m["train_time_s"] > 0
        assert [t["step"] for t in record["trace"]] == list(range(1, STEPS + 1))
        assert all(t["grad_norm"] > 0 and t["loss"] > 0 for t in record["trace"])
        assert m["grad_norm_mean"] == pytest.approx(sum(t["grad_norm"] for t in record["trace"]) / STEPS)
        assert record["evals"] and record["evals"][-1]["eval_loss"] == pytest.approx(m["eval_loss"])
        # the exact config of the cell, and its run folder
        assert record["cell"] == cell.id
        assert record["config"] == cell.config.model_dump(mode="json")
        assert record["run_dir"].endswith(f"{cell.index:03d}-{cell.id}")
        summary = json.loads((bench["tmp"] / "runs" / "tiny" / f"{cell.index:03d}-{cell.id}" / "summary.json").read_text())
        assert summary["status"] == "completed"
        assert record["started"] <= record["finished"]
    lora, ia3 = (r["metrics"] for r in bench["records"][:2])
    assert lora["trainable_params"] != ia3["trainable_params"]  # really two techniques


def test_store_returns_records_in_matrix_order(bench):
    again = Store(bench["tmp"] / "graft.db").records("tiny")
    assert again == json.loads(json.dumps(bench["records"]))
    assert [r["cell"] for r in again] == [c.id for c in bench["matrix"].expand()]
    [row] = Store(bench["tmp"] / "graft.db").names()
    assert (row["name"], row["cells"], row["completed"], row["failed"]) == ("tiny", 3, 2, 1)


def test_rerun_skips_finished_cells(bench, monkeypatch):
    def no_run(*args, **kwargs):
        raise AssertionError("a finished cell ran again")

    monkeypatch.setattr(runner, "run_cell", no_run)
    progress = Recorder()
    records = run_matrix(bench["matrix"], Store(bench["tmp"] / "graft.db"), bench["tmp"] / "runs", progress)
    assert records == json.loads(json.dumps(bench["records"]))
    assert any("3 of 3 cells already finished" in line for line in progress.logs)


def copy_store(bench, tmp_path) -> Store:
    """The shared results in a copy of the database, for tests that change them."""
    shutil.copy(bench["tmp"] / "graft.db", tmp_path / "graft.db")
    return Store(tmp_path / "graft.db")


def counting_run_cell(monkeypatch) -> list[str]:
    """Wrap the real run_cell and note which cells it ran."""
    calls, real = [], runner.run_cell

    def run_cell(benchmark, cell, *args, **kwargs):
        calls.append(cell.id)
        return real(benchmark, cell, *args, **kwargs)

    monkeypatch.setattr(runner, "run_cell", run_cell)
    return calls


def test_retry_failed_reruns_only_the_failed_cell(bench, monkeypatch, tmp_path):
    store = copy_store(bench, tmp_path)
    calls = counting_run_cell(monkeypatch)
    records = run_matrix(bench["matrix"], store, tmp_path / "runs", retry_failed=True)
    assert calls == [bench["records"][2]["cell"]]
    assert records[:2] == json.loads(json.dumps(bench["records"][:2]))  # untouched
    assert records[2]["status"] == "failed" and "data file not found" in records[2]["error"]
    assert records[2]["run_dir"].startswith(str(tmp_path / "runs"))  # the new attempt's record was stored


def test_rerun_runs_every_cell_again(bench, monkeypatch, tmp_path):
    store = copy_store(bench, tmp_path)
    ran = []

    def fake_run_cell(benchmark, cell, label, root, progress, timeout=None):
        ran.append(cell.id)
        return {**bench["records"][cell.index], "label": label, "finished": "rerun"}

    monkeypatch.setattr(runner, "run_cell", fake_run_cell)
    records = run_matrix(bench["matrix"], store, tmp_path / "runs", rerun=True)
    assert ran == [c.id for c in bench["matrix"].expand()]
    assert [r["finished"] for r in records] == ["rerun"] * 3
    assert [r["status"] for r in records] == ["completed", "completed", "failed"]


def test_cell_killed_by_timeout_is_failed(bench, tmp_path, tiny_model_dir):
    matrix = Matrix.from_dict({"name": "slow", **base_config(tiny_model_dir.resolve(), bench["data"]),
                               "matrix": {"technique": ["lora"]}})
    store = Store(tmp_path / "graft.db")
    [record] = run_matrix(matrix, store, tmp_path / "runs", cell_timeout=0.5)
    assert record["status"] == "failed"
    assert record["error"].startswith("timed out after 0.5 s")
    assert store.records("slow")[0]["status"] == "failed"


def test_interrupt_in_the_parent_stops_the_cell(bench, tmp_path, tiny_model_dir, monkeypatch):
    """The child runs in its own session, so Ctrl-C in the terminal reaches only the parent: the
    runner must not leave the child training on."""
    children, real_popen = [], runner.subprocess.Popen

    def popen(*args, **kwargs):
        children.append(real_popen(*args, **kwargs))
        return children[-1]

    class CtrlC(Recorder):
        def start(self, task, total=None, completed=0):
            if task == "train":  # the child has started its (long) training loop
                raise KeyboardInterrupt

    monkeypatch.setattr(runner.subprocess, "Popen", popen)
    base = base_config(tiny_model_dir.resolve(), bench["data"])
    base["train"]["max_steps"] = 100_000
    matrix = Matrix.from_dict({"name": "interrupted", **base, "matrix": {"technique": ["lora"]}})
    store = Store(tmp_path / "graft.db")
    try:
        with pytest.raises(KeyboardInterrupt):
            run_matrix(matrix, store, tmp_path / "runs", CtrlC())
        [child] = children
        assert child.wait(timeout=10) == -9  # killed, not left to train 100,000 steps
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert store.records("interrupted")[0]["status"] == "pending"  # nothing recorded for it


def test_store_pending_cells_and_unknown_names(tmp_path):
    store = Store(tmp_path / "graft.db")
    with pytest.raises(ConfigError, match=r"no benchmark named 'nope' .*\(known: none yet\)"):
        store.records("nope")
    store.save_benchmark("b2", {}, ["c1"])
    store.save_benchmark("b1", {"name": "b1"}, ["c3", "c1", "c2"])
    # stored out of order; read back in the benchmark's cell order, the unrun cell pending
    for cid, index in (("c2", 2), ("c3", 0)):
        store.save_cell({"benchmark": "b1", "cell": cid, "index": index, "label": cid, "status": "completed",
                         "metrics": {"wall_s": 1.0}, "params": {}, "trace": [], "evals": []})
    records = store.records("b1")
    assert [r["cell"] for r in records] == ["c3", "c1", "c2"]
    assert [r["status"] for r in records] == ["completed", "pending", "completed"]
    assert records[1]["index"] == 1 and records[1]["metrics"] is None
    # the same cell id in another benchmark is another cell
    assert store.records("b2")[0]["status"] == "pending"
    # saving again replaces the cell's record
    store.save_cell({"benchmark": "b1", "cell": "c3", "index": 0, "label": "c3", "status": "failed", "error": "boom"})
    assert store.cell("b1", "c3")["status"] == "failed" and store.cell("b1", "c3")["error"] == "boom"
    with pytest.raises(ConfigError, match=r"no benchmark named 'b3' .*\(known: b1, b2\)"):
        store.records("b3")


def test_export_csv_and_json(bench):
    records = bench["records"]
    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    assert len(rows) == 3
    assert {"technique.name", "data.path", "label", "status", "error", *METRICS} <= set(rows[0])
    assert [r["technique.name"] for r in rows] == ["lora", "ia3", "lora"]
    assert [r["data.path"] for r in rows] == ["", "", str(bench["missing"])]
    assert float(rows[0]["tokens_per_s"]) == pytest.approx(records[0]["metrics"]["tokens_per_s"])
    assert int(rows[1]["trainable_params"]) == records[1]["metrics"]["trainable_params"]
    assert rows[2]["status"] == "failed" and rows[2]["tokens_per_s"] == "" and "data file not found" in rows[2]["error"]

    assert json.loads(to_json(records)) == json.loads(json.dumps(records))
    assert export(records, "json") == to_json(records)
    with pytest.raises(ValueError, match="unknown export format"):
        export(records, "xml")


def test_export_markdown(bench):
    records = [*bench["records"], {**bench["records"][0], "label": "a|b", "status": "completed"}]
    lines = to_markdown(records).splitlines()
    assert len(lines) == 2 + len(records)
    assert lines[0].startswith("| cell | status | tokens/s |")
    assert set(lines[1]) <= set("|-:") and lines[1].count("|") == lines[0].count("|")
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[2:])
    assert lines[-1].startswith("| a\\|b | completed |")
    # an escaped pipe keeps the column count
    assert all(line.replace("\\|", "").count("|") == lines[0].count("|") for line in lines[2:])
    assert "| failed |" in lines[4] and lines[2].startswith(f"| {records[0]['label']} | completed | ")


def test_cli_benchmark(tmp_path, tiny_model_dir, tiny_chat_data):
    db, runs = tmp_path / "graft.db", tmp_path / "runs"
    args = ["benchmark", "--data", tiny_chat_data, "--model", tiny_model_dir.resolve(), "--techniques", "lora,ia3",
            "--steps", 2, "--db", db, "--runs-dir", runs, "--name", "t", "--limit", 24, "--max-length", 64,
            "--set", "data.eval_size=4", "--set", "train.batch_size=4", "--set", "train.threads=1"]
    dry = run_graft(*args, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "benchmark t: 2 cells" in dry.stdout
    assert re.search(r"│ 0 │ [0-9a-f]{10} │ lora", dry.stdout) and re.search(r"│ 1 │ [0-9a-f]{10} │ ia3", dry.stdout)
    assert not db.exists() and not runs.exists()

    done = run_graft(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"│ lora\s+│ completed\s+│\s+[\d,]+ │", done.stdout), done.stdout
    assert re.search(r"│ ia3\s+│ completed\s+│\s+[\d,]+ │", done.stdout), done.stdout
    assert (runs / "t" / "report" / "dashboard.html").is_file()

    exported = run_graft("benchmark", "export", "t", "--format", "csv", "--db", db, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["technique.name"], r["status"]) for r in rows] == [("lora", "completed"), ("ia3", "completed")]
    assert all(float(r["tokens_per_s"]) > 0 for r in rows)

    listed = run_graft("benchmark", "list", "--db", db, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"│ t\s+│ 2\s+│ 2\s+│ 0\s+│", listed.stdout), listed.stdout


def test_a_diverged_cell_is_stored_and_served_as_strict_json(tmp_path):
    """NaN losses (a diverged run) become null: the API's strict JSON would refuse NaN with a 500."""
    from datetime import datetime

    from graft.bench.matrix import Cell
    from graft.config import RunConfig

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "steps": 2, "train_time_s": 1.0,
                                                      "final_loss": float("nan"), "eval_loss": float("inf")}))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"type": "train", "step": 1, "loss": float("nan")}) + "\n")
    cell = Cell(0, {"train.lr": 10.0}, RunConfig.from_dict({"data": {"path": "d.json"}}))
    record = runner.build_record("diverged", cell, "lr=10", run_dir, None, 1.0, datetime.now())
    assert record["metrics"]["final_loss"] is None and record["metrics"]["eval_loss"] is None
    assert record["trace"][0]["loss"] is None
    json.dumps(record, allow_nan=False)  # what the API's JSON response does
