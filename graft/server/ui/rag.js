// Knowledge: pick or create a knowledge base, upload documents into it, and ask a served model a
// question answered from them. The answer streams in; its numbered sources are listed under it.

import { api, stream } from "./api.js";
import { h, fill, notice, table, show } from "./dom.js";

const ACCEPT = ".txt,.text,.md,.markdown,.rst,.log,.html,.htm,.xhtml,.pdf,.json,.jsonl";
const SNIPPET = 240;  // characters of a source shown before it is expanded

export async function render(main, preselect) {
  const kbSelect = h("select", { id: "rag-kb", name: "kb", onchange: () => choose(kbSelect.value) });
  const newName = h("input", { id: "rag-new-name", name: "name", placeholder: "new-base", required: true,
    pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*", title: "letters, digits, . _ -" });
  const createForm = h("form", { id: "rag-create", className: "row", onsubmit: create },
    label("New knowledge base", newName), h("button", { type: "submit" }, "Create"));
  const info = h("div", { id: "rag-info" });
  const files = h("input", { type: "file", name: "files", multiple: true, required: true, accept: ACCEPT });
  const uploadForm = h("form", { id: "rag-upload", className: "row", onsubmit: upload },
    files, h("button", { type: "submit" }, "Upload and index"));
  const report = h("div", { id: "rag-report", className: "status" });

  const model = h("select", { id: "rag-model", name: "model" });
  const k = h("input", { type: "number", name: "k", min: 1, max: 100, value: 10 });
  const temperature = h("input", { type: "number", name: "temperature", min: 0, max: 2, step: 0.1, value: 0 });
  const maxTokens = h("input", { type: "number", name: "max_tokens", min: 1, value: 256 });
  const question = h("textarea", { id: "rag-question", rows: 2, placeholder: "Ask a question about the documents… (Enter asks)" });
  const askButton = h("button", { type: "submit", id: "rag-ask" }, "Ask");
  const stop = h("button", { type: "button", disabled: true, onclick: () => controller?.abort() }, "Stop");
  const askForm = h("form", { id: "rag-ask-form", className: "chat-form", onsubmit: ask }, question, h("div", { className: "row" }, askButton, stop));
  const status = h("div", { id: "rag-status", className: "status" });
  const answer = h("div", { id: "rag-answer", className: "rag-answer", "aria-live": "polite", hidden: true });
  const meta = h("div", { id: "rag-meta", className: "muted" });
  const sources = h("ol", { id: "rag-sources", className: "rag-sources" });

  fill(main, h("h1", {}, "Knowledge"),
    h("div", { className: "row" }, label("Knowledge base", kbSelect), createForm), info,
    h("h2", {}, "Documents"), uploadForm, report,
    h("h2", {}, "Ask"),
    h("div", { className: "row" }, label("Model", model), label("Sources (k)", k), label("Temperature", temperature),
      label("Max tokens", maxTokens)),
    askForm, status, answer, meta, sources);
  question.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); askForm.requestSubmit(); } });

  let controller = null;

  async function loadBases(wanted) {
    const bases = await api("/api/rag");
    fill(kbSelect, bases.length ? bases.map((b) => h("option", { value: b.name }, `${b.name} (${b.files} documents)`))
      : h("option", { value: "" }, "none yet: create one"));
    if (wanted && bases.some((b) => b.name === wanted)) kbSelect.value = wanted;
    return kbSelect.value;
  }

  async function choose(name) {
    if (location.hash !== `#/rag/${encodeURIComponent(name)}` && name) history.replaceState(null, "", `#/rag/${encodeURIComponent(name)}`);
    fill(report);
    if (!name) { fill(info, h("p", { className: "muted" }, "Create a knowledge base, then upload documents into it.")); return; }
    try {
      const kb = await api(`/api/rag/${encodeURIComponent(name)}`);
      fill(info, h("p", { className: "muted" },
        `${kb.files} documents, ${kb.chunks} chunks · ${kb.embedder} (${kb.dim} dims), ${kb.index} index · chunks of ${kb.chunk_size} characters, ${kb.overlap} overlap`),
      kb.documents.length ? table(kb.documents, [
        ["document", (d) => d.source],
        ["chunks", (d) => show(d.chunks)],
        ["indexed", (d) => show(d.indexed_at)],
        ["from", (d) => (d.uploaded ? "upload" : "graft rag index")],
      ]) : h("p", { className: "muted" }, "No documents yet: upload some."));
    } catch (error) { notice(info, error); }
  }

  async function create(event) {
    event.preventDefault();
    const name = newName.value.trim();
    if (!name) return;
    try {
      const kb = await api("/api/rag", { json: { name } });
      newName.value = "";
      await loadBases(kb.name);
      await choose(kb.name);
    } catch (error) { notice(report, error); }
  }

  async function upload(event) {
    event.preventDefault();
    const name = kbSelect.value;
    if (!name) { notice(report, "Create a knowledge base first."); return; }
    if (!files.files.length) return;
    const form = new FormData();
    for (const file of files.files) form.append("files", file);
    notice(report, `Uploading and indexing ${files.files.length} file(s)…`, "info");
    try {
      const result = await api(`/api/rag/${encodeURIComponent(name)}/documents`, { form });
      files.value = "";
      await loadBases(name);
      await choose(name);
      fill(report, indexReport(result));
    } catch (error) { notice(report, error); }
  }

  async function ask(event) {
    event.preventDefault();
    const text = question.value.trim();
    const name = kbSelect.value;
    if (!text || !name || controller) return;
    answer.hidden = false;
    fill(answer);
    answer.classList.add("streaming");
    delete answer.dataset.done;
    fill(sources);
    fill(status);
    fill(meta);
    controller = new AbortController();
    askButton.disabled = true; stop.disabled = false;
    try {
      await stream(`/api/rag/${encodeURIComponent(name)}/ask`, {
        method: "POST", signal: controller.signal,
        json: { question: text, model: model.value || null, k: Number(k.value), temperature: Number(temperature.value),
                max_tokens: Number(maxTokens.value), stream: true },
        onEvent(type, data) {
          if (type === "error" || data?.error) throw new Error(data.error?.message || "the answer failed");
          if (type === "sources") {
            fill(sources, data.sources.map(sourceItem));
            if (data.left_out) meta.append(h("p", {}, `${data.left_out} more retrieved chunk(s) did not fit the model's context.`));
          } else if (type === "delta") {
            answer.append(data.text);
          } else if (type === "done") {
            for (const item of sources.children) item.classList.toggle("cited", data.cited.includes(Number(item.dataset.n)));
            const u = data.usage;
            meta.prepend(h("p", {},
              `${u.prompt_tokens} prompt + ${u.completion_tokens} answer tokens (${u.finish_reason}); cites ${data.cited.length ? data.cited.map((n) => `[${n}]`).join(" ") : "no source"}`));
          }
        },
      });
    } catch (error) {
      if (error.name !== "AbortError") notice(status, error);
    } finally {
      answer.classList.remove("streaming");
      answer.dataset.done = "true";
      controller = null;
      askButton.disabled = false; stop.disabled = true;
    }
  }

  try {
    const { data } = await api("/v1/models");
    fill(model, data.map((m) => h("option", { value: m.id }, m.adapter ? `${m.id} (${m.technique || "adapter"} on ${m.base})` : `${m.id} (base)`)));
  } catch (error) { notice(status, error); }
  try {
    await choose(await loadBases(preselect));
  } catch (error) { notice(info, error); }

  return () => controller?.abort();
}

// One numbered source: where it is from, its score, a snippet that expands to the whole chunk.
function sourceItem(s) {
  const where = [s.title, s.page ? `p. ${s.page}` : s.line > 1 ? `line ${s.line}` : null].filter(Boolean).join(" · ");
  const long = s.text.length > SNIPPET;
  return h("li", { dataset: { n: s.n, source: s.source } },
    h("div", { className: "source-head" },
      h("span", { className: "source-n" }, `[${s.n}]`), " ",
      h("strong", { className: "source-file" }, s.source),
      where && h("span", { className: "muted" }, ` ${where}`),
      h("span", { className: "badge" }, `score ${s.score.toFixed(3)}`)),
    long ? h("details", {}, h("summary", {}, h("span", { className: "snippet" }, s.text.slice(0, SNIPPET) + "…"), h("span", { className: "more" })),
      h("div", { className: "source-text" }, s.text))
      : h("div", { className: "source-text" }, s.text));
}

function indexReport(r) {
  const parts = [["added", r.added], ["re-indexed", r.updated], ["unchanged", r.unchanged]]
    .filter(([, list]) => list.length).map(([what, list]) => `${what}: ${list.join(", ")}`);
  return h("div", { className: "rag-report" },
    h("p", { className: "info", role: "status" },
      `${parts.join("; ") || "nothing new"} · ${r.chunks_embedded} chunk(s) embedded in ${r.seconds} s, ${r.chunks} in all`),
    r.skipped.map((s) => h("p", { className: "error" }, `skipped ${s.path}: ${s.reason}`)));
}

function label(text, input) {
  return h("label", {}, h("span", {}, text), input);
}
