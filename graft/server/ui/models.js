// Models: what graft knows (catalog and cache), and fetching one from the Hub by id.

import { api } from "./api.js";
import { h, fill, notice, objectTable } from "./dom.js";

export async function render(main) {
  const list = h("div", {}, h("p", { className: "muted" }, "Loading…"));
  const status = h("div", { className: "status" });
  const hubId = h("input", { name: "hub_id", placeholder: "HuggingFaceTB/SmolLM2-135M-Instruct", required: true, size: 40 });
  const form = h("form", { className: "row", onsubmit: download }, hubId, h("button", { type: "submit" }, "Download"));
  fill(main, h("h1", {}, "Models"), form, status, list);

  async function load() {
    try {
      const body = await api("/api/models");
      const rows = Array.isArray(body) ? body : body.models || [];
      fill(list, rows.length ? objectTable(rows) : h("p", { className: "muted" }, "No models yet."));
    } catch (error) { notice(list, error); }
  }

  // the server answers with a download job; follow it here until it ends (its page has the logs)
  async function download(event) {
    event.preventDefault();
    const id = hubId.value.trim();
    try {
      const job = await api("/api/models/download", { json: { hub_id: id } });
      const link = h("a", { href: `#/jobs/${job.id}` }, `job ${job.id}`);
      const line = h("span", {}, "queued");
      fill(status, h("p", { className: "info", role: "status" }, `Downloading ${id} (`, link, "): ", line));
      for (let now = job; ; now = await api(`/api/jobs/${job.id}`)) {
        const p = now.progress;
        fill(line, now.status, p && p.total ? ` · ${p.completed ?? 0}/${p.total} MiB` : "");
        if (now.status === "completed") { notice(status, `Downloaded ${id} to ${now.result.path}.`, "info"); break; }
        if (!["queued", "running"].includes(now.status)) { notice(status, new Error(`${id}: ${now.error || now.status}`)); break; }
        if (!main.isConnected) return;  // the user went to another page
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
      load();
    } catch (error) { notice(status, error); }
  }

  await load();
}
