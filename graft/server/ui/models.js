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

  async function download(event) {
    event.preventDefault();
    notice(status, `Downloading ${hubId.value}…`, "info");
    try {
      const result = await api("/api/models/download", { json: { hub_id: hubId.value.trim() } });
      // the server may answer with a job (long download) or with the model itself
      if (result && result.id && result.kind) {
        fill(status, h("p", { className: "info" }, "Download queued as ", h("a", { href: `#/jobs/${result.id}` }, `job ${result.id}`)));
      } else {
        notice(status, `Downloaded ${hubId.value}.`, "info");
      }
      load();
    } catch (error) { notice(status, error); }
  }

  await load();
}
