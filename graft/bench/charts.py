"""Benchmark charts: pure functions from records (see record.py) to Vega-Lite v5 spec dicts.

Nothing here renders or touches files (report.py does). Only completed records are plotted; a
chart with nothing to show is None, and `charts_for` leaves it out.
"""

from __future__ import annotations

import math
from typing import Any

from graft.memory.devices import GiB

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
WIDTH, HEIGHT = 520, 300

# Titles (with units) for the per-cell metrics a sweep can plot.
METRIC_TITLES = {
    "grad_norm_mean": "Mean gradient norm",
    "train_loss": "Train loss (mean of last 10 steps)",
    "final_loss": "Final train loss",
    "eval_loss": "Eval loss",
    "eval_ppl": "Eval perplexity",
    "tokens_per_s": "Throughput (tokens/s)",
    "steps_per_s": "Steps/s",
    "wall_s": "Wall time (s)",
    "train_time_s": "Train time (s)",
    "trainable_percent": "Trainable parameters (%)",
    "trainable_params": "Trainable parameters",
    "peak_memory_bytes": "Peak memory (GiB)",
    "avg_memory_bytes": "Average memory (GiB)",
    "estimated_memory_bytes": "Estimated memory (GiB)",
}


# ---------------------------------------------------------------- helpers


def completed(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("status") == "completed"]


def _num(value: Any) -> float | None:
    """A finite number or None: NaN/inf are not valid JSON and would break the chart."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if math.isfinite(value) else None


def _metric(record: dict, key: str) -> float | None:
    value = _num((record.get("metrics") or {}).get(key))
    if value is not None and key.endswith("_memory_bytes"):
        return round(value / GiB, 3)
    return value


def _technique(record: dict) -> str:
    return str((record.get("params") or {}).get("technique.name", record["label"]))


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _color(field: str, title: str, n: int) -> dict:
    # category10 repeats colours past ten series; tableau20 keeps bigger matrices readable
    scale = {"scheme": "tableau20"} if n > 10 else {}
    return {"field": field, "type": "nominal", "title": title, "scale": scale,
            "legend": {"labelLimit": 360}}


def _spec(title: str, values: list[dict], **body: Any) -> dict:
    return {"$schema": SCHEMA, "title": title, "width": WIDTH, "height": HEIGHT,
            "data": {"values": values}, **body}


def _step_rows(records: list[dict], key: str) -> list[dict]:
    return [{"label": r["label"], "step": step, key: value}
            for r in completed(records) for t in r.get("trace") or []
            if (step := _num(t.get("step"))) is not None and (value := _num(t.get(key))) is not None]


def _step_line(key: str, title: str, n: int) -> dict:
    return {"mark": {"type": "line", "point": False, "tooltip": True},
            "encoding": {"x": {"field": "step", "type": "quantitative", "title": "Step"},
                         "y": {"field": key, "type": "quantitative", "title": title,
                               "scale": {"zero": False}},
                         "color": _color("label", "Cell", n),
                         "tooltip": [{"field": "label", "title": "Cell"},
                                     {"field": "step", "title": "Step"},
                                     {"field": key, "title": title, "format": ".4f"}]}}


# ---------------------------------------------------------------- charts


def loss_curves(records: list[dict]) -> dict | None:
    """Train loss per logged step, one line per cell; eval losses as points on the same axes."""
    train = _step_rows(records, "loss")
    evals = [{"label": r["label"], "step": step, "eval_loss": value}
             for r in completed(records) for e in r.get("evals") or []
             if (step := _num(e.get("step"))) is not None and (value := _num(e.get("eval_loss"))) is not None]
    if not train and not evals:
        return None
    n = len({row["label"] for row in train + evals})
    layers = []
    if train:
        layers.append({"data": {"values": train}, **_step_line("loss", "Loss", n)})
    if evals:
        layers.append({"data": {"values": evals},
                       "mark": {"type": "point", "filled": True, "size": 70, "shape": "diamond",
                                "tooltip": True},
                       "encoding": {"x": {"field": "step", "type": "quantitative", "title": "Step"},
                                    "y": {"field": "eval_loss", "type": "quantitative", "title": "Loss"},
                                    "color": _color("label", "Cell", n),
                                    "tooltip": [{"field": "label", "title": "Cell"},
                                                {"field": "step", "title": "Step"},
                                                {"field": "eval_loss", "title": "Eval loss", "format": ".4f"}]}})
    title = "Loss vs step (lines: train, diamonds: eval)" if train and evals else "Loss vs step"
    # no top-level data: each layer carries its own rows
    return {"$schema": SCHEMA, "title": title, "width": WIDTH, "height": HEIGHT, "layer": layers}


def grad_norm_curves(records: list[dict]) -> dict | None:
    """Gradient norm per logged step, one line per cell."""
    rows = _step_rows(records, "grad_norm")
    if not rows:
        return None
    return _spec("Gradient norm vs step", rows,
                 **_step_line("grad_norm", "Gradient norm", len({r["label"] for r in rows})))


def memory_vs_throughput(records: list[dict]) -> dict | None:
    """Measured peak memory (circle) and the estimate (cross) vs tokens/s, one colour per technique."""
    rows = []
    for r in completed(records):
        cell = {"label": r["label"], "technique": _technique(r),
                "tokens_per_s": _metric(r, "tokens_per_s"), "peak_gib": _metric(r, "peak_memory_bytes"),
                "avg_gib": _metric(r, "avg_memory_bytes"), "estimated_gib": _metric(r, "estimated_memory_bytes")}
        if cell["tokens_per_s"] is None:
            continue
        for kind, key in (("measured peak", "peak_gib"), ("estimated", "estimated_gib")):
            if cell[key] is not None:
                rows.append({**cell, "memory": kind, "gib": cell[key]})
    if not rows:
        return None
    tooltip = [{"field": "label", "title": "Cell"}, {"field": "technique", "title": "Technique"},
               {"field": "tokens_per_s", "title": "Tokens/s", "format": ",.0f"},
               {"field": "peak_gib", "title": "Peak (GiB)", "format": ".2f"},
               {"field": "avg_gib", "title": "Average (GiB)", "format": ".2f"},
               {"field": "estimated_gib", "title": "Estimated (GiB)", "format": ".2f"}]
    x = {"field": "tokens_per_s", "type": "quantitative", "title": "Throughput (tokens/s)"}
    n = len({row["technique"] for row in rows})
    # a faint rule joins each cell's estimate to its measurement, so the estimate error is visible
    rule = {"transform": [{"filter": "isValid(datum.peak_gib) && isValid(datum.estimated_gib)"},
                          {"filter": {"field": "memory", "equal": "measured peak"}}],
            "mark": {"type": "rule", "opacity": 0.35},
            "encoding": {"x": x, "y": {"field": "peak_gib", "type": "quantitative"},
                         "y2": {"field": "estimated_gib"}, "color": _color("technique", "Technique", n)}}
    points = {"mark": {"type": "point", "size": 90, "filled": True, "tooltip": True},
              "encoding": {"x": x, "y": {"field": "gib", "type": "quantitative", "title": "Memory (GiB)"},
                           "color": _color("technique", "Technique", n),
                           "shape": {"field": "memory", "type": "nominal", "title": "Memory",
                                     "scale": {"domain": ["measured peak", "estimated"],
                                               "range": ["circle", "cross"]}},
                           "tooltip": tooltip}}
    return _spec("Peak memory vs throughput", rows, layer=[rule, points])


def trainable_bars(records: list[dict]) -> dict | None:
    """Trainable parameters as % of the model, one bar per cell; log scale when the spread is wide."""
    rows = [{"label": r["label"], "technique": _technique(r), "trainable_percent": pct,
             "trainable_params": _metric(r, "trainable_params"), "total_params": _metric(r, "total_params")}
            for r in completed(records) if (pct := _metric(r, "trainable_percent")) is not None]
    if not rows:
        return None
    pcts = [row["trainable_percent"] for row in rows]
    log = min(pcts) > 0 and max(pcts) / min(pcts) >= 100
    x_title = "Trainable parameters (% of total" + (", log scale)" if log else ")")
    spec = _spec("Trainable parameters per cell", rows,
                 mark={"type": "bar", "tooltip": True},
                 encoding={"y": {"field": "label", "type": "nominal", "title": "Cell", "sort": "-x",
                                 "axis": {"labelLimit": 360}},
                           "x": {"field": "trainable_percent", "type": "quantitative", "title": x_title,
                                 "scale": {"type": "log"} if log else {}},
                           "color": _color("technique", "Technique", len({r["technique"] for r in rows})),
                           "tooltip": [{"field": "label", "title": "Cell"},
                                       {"field": "trainable_percent", "title": "Trainable (%)", "format": ".4g"},
                                       {"field": "trainable_params", "title": "Trainable", "format": ","},
                                       {"field": "total_params", "title": "Total", "format": ","}]})
    spec["height"] = {"step": 22}
    return spec


def _series_keys(cells: list[dict], axis: str) -> list[str]:
    """Params that vary among the cells and are not a function of `axis` (a co-swept alpha=2r adds
    nothing once r is on the x axis), in first-seen order: together they name one line."""
    keys = dict.fromkeys(k for r in cells for k in r["params"] if k != axis)
    out = []
    for key in keys:
        values = {repr(r["params"].get(key)) for r in cells}
        by_axis: dict[str, set[str]] = {}
        for r in cells:
            by_axis.setdefault(repr(r["params"][axis]), set()).add(repr(r["params"].get(key)))
        if len(values) > 1 and any(len(v) > 1 for v in by_axis.values()):
            out.append(key)
    return out


def sweep(records: list[dict], axis: str, metric: str = "grad_norm_mean") -> dict | None:
    """`metric` against the swept values of param `axis`, one line per combination of the other
    varying params; None unless the completed cells hold at least two values of `axis`."""
    cells = [r for r in completed(records)
             if (r.get("params") or {}).get(axis) is not None and _metric(r, metric) is not None]
    values = [r["params"][axis] for r in cells]
    if len({repr(v) for v in values}) < 2:
        return None
    keys = _series_keys(cells, axis)
    rows = [{"label": r["label"], "value": r["params"][axis], metric: _metric(r, metric),
             "series": " ".join(f"{_short(k)}={r['params'].get(k, '-')}" for k in keys) or "all"}
            for r in cells]
    numeric = all(_num(v) is not None for v in values)
    positive = numeric and min(values) > 0
    log = positive and max(values) / min(values) >= 16
    x = {"field": "value", "type": "quantitative" if numeric else "ordinal", "title": axis}
    if numeric:
        x["scale"] = {"type": "log", "base": 2} if log else {"zero": False}
        # ticks at the swept values themselves, not at in-between ranks like r=9.5
        x["axis"] = {"values": sorted(set(values))}
    y_title = METRIC_TITLES.get(metric, metric)
    return _spec(f"{y_title} vs {axis}", rows,
                 mark={"type": "line", "point": {"size": 60}, "tooltip": True},
                 encoding={"x": x,
                           "y": {"field": metric, "type": "quantitative", "title": y_title,
                                 "scale": {"zero": False}},
                           "color": _color("series", " ".join(_short(k) for k in keys) or "Series",
                                           len({row["series"] for row in rows})),
                           "tooltip": [{"field": "label", "title": "Cell"},
                                       {"field": "value", "title": axis},
                                       {"field": metric, "title": y_title, "format": ".4g"}]})


def sweep_axes(records: list[dict]) -> list[str]:
    """Numeric `technique.*` params that take at least two values among completed cells."""
    cells = completed(records)
    keys = dict.fromkeys(k for r in cells for k in (r.get("params") or {}) if k.startswith("technique."))
    out = []
    for key in keys:
        values = [v for r in cells if (v := (r.get("params") or {}).get(key)) is not None]
        if values and all(_num(v) is not None for v in values) and len(set(values)) > 1:
            out.append(key)
    return out


# ---------------------------------------------------------------- tuning studies (graft tune)


def trials(records: list[dict]) -> list[dict]:
    """The records of a tuning study's trials (they carry a `trial`), by trial number."""
    return sorted((r for r in records if isinstance(r.get("trial"), dict)), key=lambda r: r["trial"]["number"])


def _outcome(record: dict) -> str:
    return "baseline" if record["trial"].get("baseline") else record.get("status", "?")


_OUTCOME_MARKS = {"baseline": ("square", "#e45756"), "completed": ("circle", "#4c78a8"), "pruned": ("cross", "#9d9d9d")}


def _outcome_marks(*outcomes: str) -> dict:
    """Shape and colour encodings that tell the trial outcomes shown apart (one legend, "Trial")."""
    return {channel: {"field": "outcome", "type": "nominal", "title": "Trial",
                      "scale": {"domain": list(outcomes), "range": [_OUTCOME_MARKS[o][i] for o in outcomes]}}
            for i, channel in enumerate(("shape", "color"))}


def tuning_history(records: list[dict]) -> dict | None:
    """Eval loss per trial: completed trials as dots, the baseline as a square, pruned trials as crosses
    at the loss they were stopped with, and a step line through the best completed loss so far."""
    rows, best = [], None
    for r in trials(records):
        value = _num(r["trial"].get("value"))
        if r.get("status") == "completed" and value is not None:
            best = value if best is None else min(best, value)
        if value is not None or best is not None:  # a failed trial only carries the line on
            rows.append({"trial": r["trial"]["number"], "label": r["label"], "outcome": _outcome(r),
                         "eval_loss": value if r.get("status") in ("completed", "pruned") else None,
                         "step": r["trial"].get("step"), "best": best})
    if not any(row["eval_loss"] is not None for row in rows):
        return None
    x = {"field": "trial", "type": "quantitative", "title": "Trial", "axis": {"tickMinStep": 1, "format": "d"}}
    line = {"transform": [{"filter": "isValid(datum.best)"}],
            "mark": {"type": "line", "interpolate": "step-after", "color": "#555", "strokeDash": [4, 3]},
            "encoding": {"x": x, "y": {"field": "best", "type": "quantitative"}}}
    points = {"transform": [{"filter": "isValid(datum.eval_loss)"}],
              "mark": {"type": "point", "size": 90, "filled": True, "tooltip": True},
              "encoding": {"x": x, "y": {"field": "eval_loss", "type": "quantitative", "title": "Eval loss",
                                         "scale": {"zero": False}},
                           **_outcome_marks("baseline", "completed", "pruned"),
                           "tooltip": [{"field": "label", "title": "Trial"}, {"field": "outcome", "title": "Outcome"},
                                       {"field": "eval_loss", "title": "Eval loss", "format": ".4f"},
                                       {"field": "step", "title": "At step"},
                                       {"field": "best", "title": "Best so far", "format": ".4f"}]}}
    return _spec("Eval loss per trial (dashed: best so far; crosses: pruned, at the step they stopped)",
                 rows, layer=[line, points])


def tuning_keys(records: list[dict]) -> list[str]:
    """The searched keys that take at least two values among completed trials."""
    done = [r for r in trials(records) if r.get("status") == "completed"]
    keys = dict.fromkeys(k for r in done for k in r.get("params") or {})
    return [k for k in keys if len({repr(r["params"].get(k)) for r in done}) > 1]


def tuning_slice(records: list[dict], key: str) -> dict | None:
    """Final eval loss against one searched key, one point per completed trial (pruned ones stopped
    early, so their losses are not comparable)."""
    rows = [{"label": r["label"], "outcome": _outcome(r), "value": value, "eval_loss": loss}
            for r in trials(records) if r.get("status") == "completed"
            and (loss := _metric(r, "eval_loss")) is not None and (value := (r.get("params") or {}).get(key)) is not None]
    if len({repr(row["value"]) for row in rows}) < 2:
        return None
    numeric = all(_num(row["value"]) is not None for row in rows)
    if not numeric:  # lists of module names and other choices: their text, one column each
        for row in rows:
            row["value"] = ",".join(map(str, row["value"])) if isinstance(row["value"], list) else str(row["value"])
    x = {"field": "value", "type": "quantitative" if numeric else "nominal", "title": key}
    values = [row["value"] for row in rows]
    if numeric:
        wide = min(values) > 0 and max(values) / min(values) >= 5  # sampled, often on a log scale
        x["scale"] = {"type": "log"} if wide else {"zero": False}
    return _spec(f"Eval loss vs {key}", rows,
                 mark={"type": "point", "size": 90, "filled": True, "tooltip": True},
                 encoding={"x": x, "y": {"field": "eval_loss", "type": "quantitative", "title": "Eval loss",
                                         "scale": {"zero": False}},
                           **_outcome_marks("baseline", "completed"),
                           "tooltip": [{"field": "label", "title": "Trial"},
                                       {"field": "eval_loss", "title": "Eval loss", "format": ".4f"}]})


def charts_for(records: list[dict]) -> dict[str, dict]:
    """Every chart that has something to show, by name (names are safe file stems).

    A tuning study leads with its trial history and a slice per searched key; it gets no sweep
    charts, which assume the other axes stay fixed while one varies."""
    charts = {"loss": loss_curves(records), "grad-norm": grad_norm_curves(records),
              "memory-vs-throughput": memory_vs_throughput(records),
              "trainable": trainable_bars(records)}
    if trials(records):
        charts = {"tuning": tuning_history(records),
                  **{f"tuning-{key}": tuning_slice(records, key) for key in tuning_keys(records)}, **charts}
    else:
        charts.update({f"sweep-{axis}": sweep(records, axis) for axis in sweep_axes(records)})
    return {name: spec for name, spec in charts.items() if spec is not None}
