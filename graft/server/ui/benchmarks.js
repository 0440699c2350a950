// Benchmarks: the saved benchmark reports, each drawn from its Vega-Lite specs with vega-embed.

import { api } from "./api.js";
import { h, fill, notice, objectTable } from "./dom.js";

export async function render(main, name) {
  const body = h("div", {});
  fill(main, h("h1", {}, name ? `Benchmark ${name}` : "Benchmarks"), body);
  try {
    if (name) await showOne(body, name);
    else await showList(body);
  } catch (error) { notice(body, error); }
}

async function showList(body) {
  const result = await api("/api/benchmarks");
  const items = Array.isArray(result) ? result : result.benchmarks || [];
  fill(body, items.length ? h("ul", { className: "cards" }, items.map((b) => {
    const name = typeof b === "string" ? b : b.name;
    return h("li", {}, h("a", { href: `#/benchmarks/${encodeURIComponent(name)}` }, name),
      typeof b === "object" ? h("span", { className: "muted" }, ` · ${counts(b)}`) : null);
  })) : h("p", { className: "muted" }, "No benchmarks yet: run `graft benchmark` or `graft tune`, or submit a benchmark job."));
}

// "6 cells: 5 completed, 1 pruned" (statuses with none left out)
function counts(b) {
  const parts = ["completed", "failed", "pruned"].filter((k) => b[k]).map((k) => `${b[k]} ${k}`);
  return `${b.cells} cells` + (parts.length ? `: ${parts.join(", ")}` : "");
}

async function showOne(body, name) {
  const result = await api(`/api/benchmarks/${encodeURIComponent(name)}`);
  const specs = chartSpecs(result);
  const charts = specs.map(([title]) => h("figure", { className: "chart" }, h("figcaption", {}, title)));
  fill(body, h("div", { className: "charts" }, charts),
    Array.isArray(result.records) && result.records.length ? [h("h2", {}, "Records"), objectTable(result.records)] : null);
  if (!specs.length) body.prepend(h("p", { className: "muted" }, "This benchmark has no charts."));
  for (const [i, [, spec]] of specs.entries()) {
    const box = h("div", {});
    charts[i].append(box);
    await window.vegaEmbed(box, spec, { renderer: "svg", actions: false });
  }
}

// [title, spec] pairs from {charts|specs: {name: spec}} or a list of {name, spec}.
function chartSpecs(result) {
  const found = result.charts || result.specs || [];
  if (Array.isArray(found)) return found.map((c, i) => [c.name || c.title || `chart ${i + 1}`, c.spec || c]);
  return Object.entries(found);
}
