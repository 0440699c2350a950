// New run: a form that becomes a RunConfig dict; the memory estimate follows every change,
// and submitting queues a train job.

import { api } from "./api.js";
import { h, fill, notice, bytes, show } from "./dom.js";

const LEVERS = [
  ["max_steps", "Steps", { type: "number", min: 1, value: 100 }],
  ["batch_size", "Batch size", { type: "number", min: 1, value: 4 }],
  ["lr", "Learning rate", { type: "number", min: 0, step: "any", value: 2e-4 }],
  ["max_length", "Max length (tokens)", { type: "number", min: 8, value: 512 }],
];

export async function render(main) {
  const [models, datasets, techniques] = await Promise.all([
    api("/api/models").catch(() => []), api("/api/datasets").catch(() => []), api("/api/techniques").catch(() => []),
  ]);
  // without the techniques list, LoRA with its defaults is still a valid choice
  const techList = listOf(techniques, "techniques").length ? listOf(techniques, "techniques") : [{ name: "lora" }];

  const model = h("input", { name: "model", list: "model-names", required: true, size: 40, placeholder: "catalog name, local folder or Hub id" });
  const modelNames = h("datalist", { id: "model-names" }, listOf(models, "models").map((m) => h("option", { value: m.name || m.id || m.hub_id })));
  // an uploaded dataset by name, or any path / Hub id the server can read
  const known = new Map(listOf(datasets, "datasets").map((d) => [d.name, d.path || d.name]));
  const dataset = h("input", { name: "dataset", list: "dataset-names", required: true, size: 40, placeholder: "uploaded dataset, file path or Hub id" });
  const datasetNames = h("datalist", { id: "dataset-names" }, [...known.keys()].map((name) => h("option", { value: name })));
  const technique = h("select", { name: "technique" },
    techList.map((t) => h("option", { value: t.name, disabled: t.available === false, title: t.description || "" },
      t.available === false ? `${t.name} (unavailable)` : t.name)));
  technique.value = techList.some((t) => t.name === "lora") ? "lora" : technique.value;
  const techOptions = h("fieldset", { className: "options" });
  const levers = Object.fromEntries(LEVERS.map(([name, , attrs]) => [name, h("input", { name, ...attrs })]));
  const precision = h("select", { name: "precision" }, ["fp32", "bf16", "fp16"].map((p) => h("option", { value: p }, p)));
  const optimizer = h("select", { name: "optimizer" },
    ["adamw", "adafactor", "adamw8bit", "paged_adamw8bit", "sgd", "mezo"].map((o) => h("option", { value: o }, o)));
  const checkpointing = h("input", { type: "checkbox", name: "gradient_checkpointing" });
  const runName = h("input", { name: "run_name", placeholder: "(automatic)", pattern: "[A-Za-z0-9_.-]+" });
  const estimate = h("div", { id: "estimate", className: "estimate", "aria-live": "polite" });
  const status = h("div", { className: "status" });

  const form = h("form", { className: "grid", id: "new-run", oninput: changed, onchange: changed, onsubmit: submit },
    field("Model", model, "wide"), modelNames, field("Dataset", dataset, "wide"), datasetNames, field("Technique", technique), techOptions,
    LEVERS.map(([name, label]) => field(label, levers[name])),
    field("Precision", precision), field("Optimizer", optimizer), field("Gradient checkpointing", checkpointing),
    field("Run name", runName),
    h("div", { className: "actions" }, h("button", { type: "submit" }, "Start training")));
  fill(main, h("h1", {}, "New run"), h("div", { className: "columns" }, form, h("aside", {}, h("h2", {}, "Memory"), estimate)), status);

  technique.addEventListener("change", showOptions);
  showOptions();

  function showOptions() {
    const chosen = techList.find((t) => t.name === technique.value);
    techOptions.hidden = !optionList(chosen).length && !chosen?.description;
    fill(techOptions, h("legend", {}, chosen ? `${chosen.name} options` : "options"),
      chosen?.description ? h("p", { className: "muted" }, chosen.description) : null,
      optionList(chosen).map(optionInput));
  }

  function config() {
    const options = {};
    for (const input of techOptions.querySelectorAll("[data-option]")) {
      const value = read(input);
      if (value !== undefined && JSON.stringify(value) !== input.dataset.default) options[input.dataset.option] = value;
    }
    const spec = {
      model: { name: model.value.trim() },
      data: { path: known.get(dataset.value.trim()) || dataset.value.trim(), max_length: Number(levers.max_length.value) },
      technique: { name: technique.value, ...options },
      train: {
        max_steps: Number(levers.max_steps.value), batch_size: Number(levers.batch_size.value), lr: Number(levers.lr.value),
        precision: precision.value, optimizer: optimizer.value, gradient_checkpointing: checkpointing.checked,
      },
    };
    if (runName.value.trim()) spec.run_name = runName.value.trim();
    return spec;
  }

  // one estimate in flight at a time; the latest form state wins
  let timer = null, asked = 0;
  function changed() {
    clearTimeout(timer);
    timer = setTimeout(updateEstimate, 300);
  }
  async function updateEstimate() {
    if (!model.value.trim() || !dataset.value.trim()) { notice(estimate, "Pick a model and a dataset to see the estimate.", "muted"); return; }
    const mine = ++asked;
    estimate.classList.add("busy");
    try {
      const result = await api("/api/estimate", { json: config() });
      if (mine === asked) showEstimate(result);
    } catch (error) {
      if (mine === asked) notice(estimate, error);
    } finally {
      if (mine === asked) estimate.classList.remove("busy");
    }
  }
  function showEstimate(r) {
    const breakdown = r.breakdown || {};
    const fits = r.fits !== false;
    fill(estimate,
      h("p", { className: `verdict ${fits ? "ok" : "bad"}`, dataset: { fits: String(fits) } },
        `${bytes(r.total ?? r.total_bytes)} — ${fits ? "fits" : "does not fit"}${r.device ? ` on ${deviceName(r.device)}` : ""}`),
      h("table", {}, h("tbody", {}, Object.entries(breakdown).map(([k, v]) =>
        h("tr", {}, h("td", {}, k), h("td", {}, typeof v === "number" ? bytes(v) : show(v)))))),
      adviceList(r.advice));
  }

  async function submit(event) {
    event.preventDefault();
    notice(status, "Submitting…", "info");
    try {
      const job = await api("/api/jobs", { json: { kind: "train", spec: config() } });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) { notice(status, error); }
  }

  changed();
}

function field(label, input, className) {
  return h("label", { className }, h("span", {}, label), input);
}

function listOf(body, key) {
  return Array.isArray(body) ? body : (body && body[key]) || [];
}

// Technique options as [{name, default, type, description}], whether the API sends a list or a mapping.
function optionList(technique) {
  const options = technique?.options || [];
  if (Array.isArray(options)) return options;
  return Object.entries(options).map(([name, v]) =>
    v !== null && typeof v === "object" && !Array.isArray(v) && ("default" in v || "type" in v) ? { name, ...v } : { name, default: v });
}

function optionInput(option) {
  const value = option.default;
  const data = { option: option.name, default: JSON.stringify(value ?? null), kind: typeof value };
  let input;
  if (typeof value === "boolean") input = h("input", { type: "checkbox", checked: value, dataset: data });
  else if (typeof value === "number") input = h("input", { type: "number", step: "any", value, dataset: data });
  else if (Array.isArray(value) || (value !== null && typeof value === "object")) {
    input = h("input", { value: JSON.stringify(value), dataset: { ...data, kind: "json" } });
  } else input = h("input", { value: value ?? "", placeholder: value === null || value === undefined ? "(default)" : "", dataset: data });
  return h("label", { title: option.description || "" }, h("span", {}, option.name), input);
}

// The typed value of an option input; undefined leaves the technique's default.
function read(input) {
  if (input.type === "checkbox") return input.checked;
  const text = input.value.trim();
  if (text === "") return undefined;
  if (input.type === "number") return Number(text);
  if (input.dataset.kind === "json") { try { return JSON.parse(text); } catch { return text; } }
  return text;
}

function deviceName(device) {
  return typeof device === "string" ? device : device.name || JSON.stringify(device);
}

function adviceList(advice) {
  if (!advice || (Array.isArray(advice) && !advice.length)) return null;
  const items = Array.isArray(advice) ? advice : [advice];
  return h("div", {}, h("h3", {}, "Advice"), h("ul", {}, items.map((a) =>
    h("li", {}, typeof a === "string" ? a : a.text || a.description || a.change || JSON.stringify(a)))));
}
