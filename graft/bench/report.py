"""Benchmark report: chart specs, rendered images and one offline HTML dashboard.

Rendering uses vl-convert (Vega in an embedded JS engine), so no browser or network is needed,
and the dashboard inlines the Vega/Vega-Lite/vega-embed bundle so it opens anywhere.
"""

from __future__ import annotations

import functools
import html
import json
import re
from pathlib import Path
from typing import Any, Callable

from graft import charts
from graft.bench.charts import charts_for
from graft.charts import FORMATS
from graft.bench.record import COLUMNS, flat_row

EMBED_OPTIONS = {"renderer": "svg",
                 # the editor/source actions link to vega.github.io; keep only the offline export
                 "actions": {"export": True, "source": False, "compiled": False, "editor": False}}

CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; font-size: 0.85rem; margin-bottom: 2rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.failed td { background: #fdecea; } tr.pending td, tr.pruned td { color: #888; }
pre.error { margin: 0; white-space: pre-wrap; max-width: 40rem; font-size: 0.8rem; }
section.chart { margin-bottom: 2.5rem; }
"""


@functools.lru_cache(maxsize=1)
def javascript_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script (about 0.9 MB) that sets window.vegaEmbed."""
    import vl_convert as vlc

    # a literal "</script" would end the inline <script> element early
    return vlc.javascript_bundle().replace("</script", "<\\/script")


def _script_json(value: Any) -> str:
    """JSON safe to inline in <script>: no '<', '>' or '&' that the HTML parser could act on."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _file_stem(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name)


def _cell(row: dict, key: str, fmt: Callable[[float], str]) -> str:
    value = row.get(key)
    text = fmt(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"
    return f'<td class="num">{html.escape(text)}</td>'


def summary_table(records: list[dict]) -> str:
    """One row per cell, matrix order; failed cells carry their (escaped) error."""
    head = "".join(f"<th>{html.escape(t)}</th>" for t in ("cell", "status", *(c[0] for c in COLUMNS), "error"))
    body = []
    for record in sorted(records, key=lambda r: r.get("index", 0)):
        row = flat_row(record)
        status = html.escape(str(row["status"]))
        error = f'<pre class="error">{html.escape(str(row["error"]))}</pre>' if row["error"] else ""
        cells = "".join(_cell(row, key, fmt) for _, key, fmt in COLUMNS)
        body.append(f'<tr class="{status}"><td>{html.escape(str(row["label"]))}</td><td>{status}</td>'
                    f"{cells}<td>{error}</td></tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


def _counts(records: list[dict]) -> str:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.get("status", "?")] = counts.get(record.get("status", "?"), 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return html.escape(f"{len(records)} cells: {parts}" if records else "no cells")


def dashboard_html(records: list[dict], specs: dict[str, dict], title: str) -> str:
    """The whole dashboard as one HTML document with every script inline."""
    sections = "\n".join(
        f'<section class="chart"><h2>{html.escape(name)}</h2><div id="chart-{i}"></div></section>'
        for i, name in enumerate(specs))
    charts = _script_json([[f"#chart-{i}", spec] for i, spec in enumerate(specs.values())])
    embed = (f"const charts = {charts};\nconst options = {_script_json(EMBED_OPTIONS)};\n"
             "for (const [target, spec] of charts) {\n"
             "  vegaEmbed(target, spec, options).catch(err => {\n"
             "    document.querySelector(target).textContent = 'chart failed: ' + err; });\n}")
    t = html.escape(title)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{t}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<h1>{t}</h1>\n<p>{_counts(records)}</p>\n"
            f"<h2>Cells</h2>\n{summary_table(records)}\n{sections}\n"
            f"<script>\n{javascript_bundle()}\n</script>\n<script>\n{embed}\n</script>\n</body>\n</html>\n")


def build_report(records: list[dict], out_dir: str | Path, title: str,
                 formats: tuple[str, ...] = FORMATS) -> dict:
    """Write specs/<name>.vl.json, charts/<name>.<format> and dashboard.html under out_dir.

    Returns {"dir", "specs": {name: path}, "charts": {name: {format: path}}, "dashboard": path}.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown chart format(s) {unknown}; choose from {', '.join(FORMATS)}")
    renderers = charts.renderers()
    out = Path(out_dir)
    (out / "specs").mkdir(parents=True, exist_ok=True)
    specs = charts_for(records)
    written: dict[str, Any] = {"dir": out, "specs": {}, "charts": {}}
    for name, spec in specs.items():
        stem = _file_stem(name)
        path = out / "specs" / f"{stem}.vl.json"
        path.write_text(json.dumps(spec, indent=2) + "\n")
        written["specs"][name] = path
        written["charts"][name] = {fmt: charts.render(spec, out / "charts" / f"{stem}.{fmt}", renderers[fmt])
                                   for fmt in formats}
    dashboard = out / "dashboard.html"
    dashboard.write_text(dashboard_html(records, specs, title), encoding="utf-8")
    written["dashboard"] = dashboard
    return written
