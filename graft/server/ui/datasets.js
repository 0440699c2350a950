// Datasets: upload a file (JSON, JSONL, CSV, Parquet, TXT), list them, preview the first rows.

import { api } from "./api.js";
import { h, fill, notice, objectTable, table, show } from "./dom.js";

export async function render(main) {
  const list = h("div", {});
  const preview = h("div", { id: "preview" });
  const status = h("div", { className: "status" });
  const file = h("input", { type: "file", name: "file", required: true, accept: ".json,.jsonl,.csv,.parquet,.txt" });
  const form = h("form", { className: "row", onsubmit: upload }, file, h("button", { type: "submit" }, "Upload"));
  fill(main, h("h1", {}, "Datasets"), form, status, list, preview);

  async function load() {
    try {
      const body = await api("/api/datasets");
      const rows = Array.isArray(body) ? body : body.datasets || [];
      fill(list, rows.length ? table(rows, [
        ["name", (d) => h("a", { href: "#", onclick: (e) => { e.preventDefault(); showPreview(d.name); } }, d.name)],
        ["format", (d) => show(d.format)],
        ["rows", (d) => show(d.rows ?? d.num_rows)],
        ["size", (d) => show(d.size ?? d.bytes)],
        ["path", (d) => show(d.path)],
      ]) : h("p", { className: "muted" }, "No datasets yet: upload one."));
    } catch (error) { notice(list, error); }
  }

  async function upload(event) {
    event.preventDefault();
    const chosen = file.files[0];
    if (!chosen) return;
    const form = new FormData();
    form.append("file", chosen);
    notice(status, `Uploading ${chosen.name}…`, "info");
    try {
      const result = await api("/api/datasets", { form });
      notice(status, `Uploaded ${result.name || chosen.name}.`, "info");
      await load();
      if (result.name) showPreview(result.name);
    } catch (error) { notice(status, error); }
  }

  async function showPreview(name) {
    fill(preview, h("p", { className: "muted" }, `Loading ${name}…`));
    try {
      const body = await api(`/api/datasets/${encodeURIComponent(name)}/preview`);
      const rows = Array.isArray(body) ? body : body.rows || [];
      const about = Array.isArray(body) ? "" : [body.format && `format ${body.format}`, body.total && `${body.total} rows`].filter(Boolean).join(", ");
      fill(preview, h("h2", {}, `Preview: ${name}`), about && h("p", { className: "muted" }, about),
        rows.length ? objectTable(rows.map(flatten)) : h("p", { className: "muted" }, "No rows."));
    } catch (error) { notice(preview, error); }
  }

  await load();
}

// Nested fields (sharegpt/messages rows) become JSON text, so every row shows in one table.
function flatten(row) {
  if (row === null || typeof row !== "object") return { value: row };
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v !== null && typeof v === "object" ? JSON.stringify(v) : v]));
}
