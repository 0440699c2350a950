"""The tuning charts of a study's dashboard: eval loss per trial with the best-so-far line and the
pruned trials marked, a slice per searched key; valid Vega-Lite that vl-convert renders."""

from __future__ import annotations

import pytest

from graft.bench import charts
from graft.bench.report import build_report

vlc = pytest.importorskip("vl_convert")


def trial(number: int, status: str, value: float | None, lr: float, modules, baseline: bool = False,
          step: int = 10) -> dict:
    params = {"train.lr": lr, "technique.target_modules": modules}
    done = status == "completed"
    return {"benchmark": "tune-x", "cell": f"trial-{number:03d}", "index": number, "label": f"#{number} lr={lr}",
            "params": params, "status": status, "error": "boom" if status == "failed" else None, "config": {},
            "metrics": {"eval_loss": value if done else None, "tokens_per_s": 100.0, "trainable_percent": 0.5},
            "trace": [{"step": s, "loss": 3.0 - s / 10, "grad_norm": 1.0} for s in range(1, step + 1)],
            "evals": [{"step": step, "eval_loss": value}] if value is not None else [],
            "trial": {"number": number, "baseline": baseline, "state": status, "value": value,
                      "step": step if value is not None else None}}


@pytest.fixture
def records() -> list[dict]:
    return [trial(0, "completed", 2.0, 2e-4, "all-linear", baseline=True),
            trial(1, "completed", 2.5, 1e-5, ["q_proj", "v_proj"]),
            trial(2, "pruned", 3.0, 1e-6, "all-linear", step=4),
            trial(3, "failed", None, 1e-2, "all-linear"),
            trial(4, "completed", 1.5, 1e-3, ["q_proj", "v_proj"])]


def test_tuning_history_has_best_so_far_and_marks_pruned_and_baseline(records):
    spec = charts.tuning_history(list(reversed(records)))  # trial order, whatever the record order
    rows = spec["data"]["values"]
    assert [r["trial"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["best"] for r in rows] == [2.0, 2.0, 2.0, 2.0, 1.5]  # pruned and failed trials never lower it
    assert [r["outcome"] for r in rows] == ["baseline", "completed", "pruned", "failed", "completed"]
    assert [r["eval_loss"] for r in rows] == [2.0, 2.5, 3.0, None, 1.5]  # the failed one draws no point
    line, points = spec["layer"]
    assert line["mark"]["interpolate"] == "step-after"
    assert points["encoding"]["shape"]["scale"]["range"] == ["square", "circle", "cross"]
    svg = vlc.vegalite_to_svg(spec)
    assert svg.count("<path") > 4


def test_charts_for_a_study_lead_with_tuning_and_skip_sweeps(records):
    specs = charts.charts_for(records)
    assert list(specs)[:3] == ["tuning", "tuning-train.lr", "tuning-technique.target_modules"]
    assert not any(name.startswith("sweep-") for name in specs)
    lr = specs["tuning-train.lr"]
    assert lr["encoding"]["x"]["scale"] == {"type": "log"}  # 1e-5 .. 1e-3
    assert sorted(r["value"] for r in lr["data"]["values"]) == [1e-5, 2e-4, 1e-3]  # completed trials only
    modules = specs["tuning-technique.target_modules"]
    assert modules["encoding"]["x"]["type"] == "nominal"
    assert {r["value"] for r in modules["data"]["values"]} == {"all-linear", "q_proj,v_proj"}
    for spec in specs.values():
        vlc.vegalite_to_svg(spec)  # raises on an invalid spec


def test_a_benchmark_without_trials_gets_no_tuning_chart(records):
    for r in records:
        r.pop("trial")
    assert not any(name.startswith("tuning") for name in charts.charts_for(records))
    assert charts.tuning_history(records) is None


def test_study_without_a_completed_or_pruned_trial_has_no_history(records):
    assert charts.tuning_history([records[3]]) is None


def test_dashboard_of_a_study(records, tmp_path):
    written = build_report(records, tmp_path, "graft tune: x", formats=("svg",))
    assert "tuning" in written["specs"] and written["charts"]["tuning"]["svg"].is_file()
    page = written["dashboard"].read_text()
    assert '<tr class="pruned"><td>#2 lr=1e-06</td><td>pruned</td>' in page
    assert "5 cells: 3 completed, 1 failed, 1 pruned" in page
