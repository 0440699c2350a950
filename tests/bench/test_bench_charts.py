"""Benchmark charts and report: specs are valid Vega-Lite (vl-convert renders them), failed cells stay
out of the charts but in the table, and the dashboard works offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from graft.bench import charts
from graft.bench.report import build_report, javascript_bundle

vlc = pytest.importorskip("vl_convert")

GIB = 1024 ** 3
FAILED_LABEL = "name=dora r=16 alpha=32"
FAILED_ERROR = "exit -9 (killed: out of memory?): <CUDA> & friends"


def record(index: int, params: dict, status: str = "completed", error: str | None = None,
           pct: float = 0.5) -> dict:
    """A record shaped like record.py's, with a 5-step trace and two evals. Failed cells keep them too
    (a cell killed late has logged steps), so only the status can keep them out of the charts."""
    label = " ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in params.items())
    metrics = {"tokens_per_s": 100.0 * (index + 1), "peak_memory_bytes": (2 + index / 4) * GIB,
               "avg_memory_bytes": 1.5 * GIB, "estimated_memory_bytes": (1.8 + index / 4) * GIB,
               "train_loss": 1.0 + index / 10, "eval_loss": 1.2, "eval_ppl": 3.3, "trainable_percent": pct,
               "trainable_params": 1000, "total_params": 200000, "grad_norm_mean": 0.5 + index / 10}
    return {"benchmark": "test", "cell": f"c{index:04d}", "index": index, "label": label, "params": params,
            "status": status, "error": error, "config": {}, "metrics": metrics,
            "trace": [{"step": s, "loss": 3.0 - s / 5 - index / 100, "grad_norm": 1.0 + s / 10, "lr": 1e-4,
                       "tokens": 100 * s, "elapsed_s": float(s)} for s in range(1, 6)],
            "evals": [{"step": 0, "eval_loss": 3.1, "eval_ppl": 22.2}, {"step": 5, "eval_loss": 1.2, "eval_ppl": 3.3}],
            "run_dir": "/tmp/x", "started": None, "finished": None}


@pytest.fixture(scope="module")
def records() -> list[dict]:
    # r and alpha co-vary (alpha = 2r) as in a typical matrix; ia3 has neither; one dora cell failed
    cells = [record(i, {"technique.name": name, "technique.r": r, "technique.alpha": 2 * r}, pct=0.1 * (i + 1))
             for i, (name, r) in enumerate([("lora", 8), ("lora", 16), ("dora", 8)])]
    cells.append(record(3, {"technique.name": "dora", "technique.r": 16, "technique.alpha": 32},
                        status="failed", error=FAILED_ERROR))
    cells.append(record(4, {"technique.name": "ia3"}, pct=0.01))
    return cells


def spec_text(spec: dict) -> str:
    return json.dumps(spec)


def test_charts_for_names_and_every_spec_renders(records: list[dict]) -> None:
    specs = charts.charts_for(records)
    assert set(specs) == {"loss", "grad-norm", "memory-vs-throughput", "trainable",
                          "sweep-technique.r", "sweep-technique.alpha"}
    for name, spec in specs.items():
        assert spec["$schema"] == charts.SCHEMA
        svg = vlc.vegalite_to_svg(spec)  # raises on an invalid spec
        assert svg.lstrip().startswith("<svg"), name
        text = spec_text(spec)
        assert "name=lora r=8 alpha=16" in text, name
        assert FAILED_LABEL not in text, name  # failed cells never reach a chart


def test_loss_curves_has_train_lines_and_eval_points(records: list[dict]) -> None:
    spec = charts.loss_curves(records)
    train, evals = (layer["data"]["values"] for layer in spec["layer"])
    assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line", "point"]
    assert len(train) == 4 * 5 and len(evals) == 4 * 2  # 4 completed cells
    assert {row["label"] for row in train} == {r["label"] for r in records if r["status"] == "completed"}
    assert spec["layer"][0]["encoding"]["color"]["field"] == "label"


def test_memory_vs_throughput_is_in_gib_with_the_estimate(records: list[dict]) -> None:
    spec = charts.memory_vs_throughput(records)
    rows = spec["data"]["values"]
    first = [row for row in rows if row["label"] == records[0]["label"]]
    assert {row["memory"]: row["gib"] for row in first} == {"measured peak": 2.0, "estimated": 1.8}
    assert first[0]["technique"] == "lora" and first[0]["tokens_per_s"] == 100.0
    points = spec["layer"][-1]["encoding"]
    assert points["color"]["field"] == "technique" and "GiB" in points["y"]["title"]
    assert "label" in {t["field"] for t in points["tooltip"]}


def test_memory_colour_falls_back_to_the_label_without_technique_param() -> None:
    rows = charts.memory_vs_throughput([record(0, {"train.lr": 1e-4})])["data"]["values"]
    assert {row["technique"] for row in rows} == {"lr=0.0001"}


def test_trainable_bars_switch_to_log_scale_on_a_wide_spread(records: list[dict]) -> None:
    spec = charts.trainable_bars(records)  # 0.01 % .. 0.3 %: 30x, linear
    assert spec["encoding"]["x"]["scale"] == {}
    assert len(spec["data"]["values"]) == 4
    wide = charts.trainable_bars(records + [record(9, {"technique.name": "full"}, pct=100.0)])
    assert wide["encoding"]["x"]["scale"] == {"type": "log"}
    vlc.vegalite_to_svg(wide)


def test_sweep_groups_by_the_other_varying_params(records: list[dict]) -> None:
    spec = charts.sweep(records, "technique.alpha")
    rows = spec["data"]["values"]
    # alpha follows r, so r does not split the lines; the technique does
    assert {row["series"] for row in rows} == {"name=lora", "name=dora"}
    assert sorted(row["value"] for row in rows) == [16, 16, 32]
    assert spec["encoding"]["y"]["field"] == "grad_norm_mean"
    loss = charts.sweep(records, "technique.r", metric="train_loss")
    assert [row["train_loss"] for row in loss["data"]["values"]] == [1.0, 1.1, 1.2]
    vlc.vegalite_to_svg(loss)


def test_sweep_needs_two_values_among_completed_cells(records: list[dict]) -> None:
    # r=16 only for lora: drop it and the one other r=16 cell is the failed one, so r does not vary
    without = [r for r in records if r["label"] != "name=lora r=16 alpha=32"]
    assert charts.sweep(without, "technique.r") is None
    assert charts.sweep(records, "technique.missing") is None
    assert not any(name.startswith("sweep-") for name in charts.charts_for(without))
    assert "sweep-technique.r" in charts.charts_for(records)


def test_no_completed_records_means_no_charts(records: list[dict]) -> None:
    assert charts.charts_for([r for r in records if r["status"] == "failed"]) == {}


def test_non_finite_values_are_dropped() -> None:
    cell = record(0, {"technique.name": "lora"})
    cell["trace"][2]["loss"] = float("nan")
    cell["metrics"]["tokens_per_s"] = float("inf")
    assert len(charts.loss_curves([cell])["layer"][0]["data"]["values"]) == 4
    assert charts.memory_vs_throughput([cell]) is None
    json.dumps(charts.charts_for([cell]), allow_nan=False)


@pytest.fixture(scope="module")
def report(records: list[dict], tmp_path_factory: pytest.TempPathFactory) -> dict:
    # the only PNG rendering in this file
    return build_report(records, tmp_path_factory.mktemp("report"), "Bench <test> & co")


def test_report_writes_specs_images_and_dashboard(report: dict) -> None:
    out = Path(report["dir"])
    assert set(report["specs"]) == set(report["charts"]) and "loss" in report["specs"]
    for name, path in report["specs"].items():
        assert path == out / "specs" / f"{name}.vl.json"
        assert json.loads(path.read_text())["$schema"] == charts.SCHEMA
        images = report["charts"][name]
        assert images["svg"].read_text().lstrip().startswith("<svg")
        assert images["png"].read_bytes().startswith(b"\x89PNG")
    assert report["dashboard"] == out / "dashboard.html" and report["dashboard"].is_file()


def test_dashboard_is_self_contained(report: dict) -> None:
    page = report["dashboard"].read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", page, re.I)
    assert javascript_bundle() in page and "window.vegaEmbed" in page
    assert page.count("vegaEmbed(target") == 1 and page.count('<section class="chart">') == len(report["specs"])
    assert "<h1>Bench &lt;test&gt; &amp; co</h1>" in page


def test_dashboard_table_lists_every_cell_with_escaped_errors(report: dict, records: list[dict]) -> None:
    page = report["dashboard"].read_text(encoding="utf-8")
    table = page[page.index("<table>"):page.index("</table>")]
    rows = re.findall(r"<tr class=\"(\w+)\"><td>([^<]*)</td>", table)
    assert rows == [(r["status"], r["label"]) for r in records]
    assert "exit -9 (killed: out of memory?): &lt;CUDA&gt; &amp; friends" in table
    assert "<CUDA>" not in page
    assert ">2.00<" in table and ">1.200<" in table  # peak GiB, eval loss of the first cell


def test_unknown_format_is_refused(records: list[dict], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pdfx"):
        build_report(records, tmp_path, "x", formats=("pdfx",))
    assert not (tmp_path / "dashboard.html").exists()


def test_report_without_completed_cells_still_has_the_table(records: list[dict], tmp_path: Path) -> None:
    written = build_report([r for r in records if r["status"] == "failed"], tmp_path, "all failed", formats=())
    assert written["specs"] == {} and FAILED_LABEL in written["dashboard"].read_text()
