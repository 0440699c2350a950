// Jobs: the list (refreshed while open), and one job's page: progress bar, live loss chart from the
// job's metric events, logs, cancel, adapter download, and serving the finished run in the chat.

import { api, stream } from "./api.js";
import { h, fill, notice, table, show } from "./dom.js";
import { lossChart } from "./chart.js";

const ACTIVE = ["queued", "running"];

export async function render(main, id) {
  return id ? renderJob(main, id) : renderList(main);
}

async function renderList(main) {
  const list = h("div", {});
  fill(main, h("h1", {}, "Jobs"), list);
  async function load() {
    try {
      const body = await api("/api/jobs");
      const jobs = Array.isArray(body) ? body : body.jobs || [];
      fill(list, jobs.length ? table(jobs, [
        ["job", (j) => h("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.id)],
        ["kind", (j) => j.kind],
        ["status", (j) => badge(j.status)],
        ["progress", (j) => progressText(j.progress)],
        ["created", (j) => show(j.created)],
        ["error", (j) => show(j.error)],
      ]) : h("p", { className: "muted" }, "No jobs yet: start one from New run."));
    } catch (error) { notice(list, error); }
  }
  await load();
  const timer = setInterval(load, 3000);
  return () => clearInterval(timer);
}

async function renderJob(main, id) {
  const title = h("h1", {}, `Job ${id}`);
  const status = h("span", { id: "job-status" });
  const bar = h("progress", { id: "job-progress", max: 1, value: 0 });
  const barText = h("span", { className: "muted" });
  const actions = h("div", { className: "row" });
  const message = h("div", { className: "status" });
  const chartBox = h("div", { id: "loss-chart", className: "chart" }, h("p", { className: "muted" }, "The loss appears here as the job logs steps."));
  const logs = h("pre", { id: "job-logs", className: "logs" });
  fill(main, title, h("p", {}, status, " ", bar, " ", barText), actions, message,
    h("h2", {}, "Loss"), chartBox, h("h2", {}, "Logs"), logs);

  const chart = lossChart(chartBox);
  const controller = new AbortController();
  let job = null;

  function setJob(next) {
    job = next;
    fill(status, badge(job.status));
    status.dataset.status = job.status;
    setProgress(job.progress);
    fill(actions,
      ACTIVE.includes(job.status) && h("button", { id: "cancel", onclick: cancel }, "Cancel"),
      job.status === "completed" && job.kind === "train" && [
        h("button", { id: "download-adapter", onclick: downloadAdapter }, "Download adapter"),
        h("button", { id: "serve-run", onclick: serveRun }, "Chat with it"),
      ]);
    if (job.error) notice(message, job.error);
  }

  function setProgress(p) {
    if (!p) return;
    if (p.total) { bar.max = p.total; bar.value = Math.min(p.completed || 0, p.total); } else bar.removeAttribute("value");
    fill(barText, progressText(p));
  }

  function log(line) {
    logs.append(line + "\n");
    logs.scrollTop = logs.scrollHeight;
  }

  async function cancel() {
    try { setJob(await api(`/api/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" })); } catch (error) { notice(message, error); }
  }

  // a plain link cannot carry the token: fetch the zip, then hand the browser a blob to save
  async function downloadAdapter() {
    try {
      const response = await api(`/api/jobs/${encodeURIComponent(id)}/artifacts/adapter`, { raw: true });
      const url = URL.createObjectURL(await response.blob());
      h("a", { href: url, download: `${runName() || id}-adapter.zip` }).click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (error) { notice(message, error); }
  }

  async function serveRun() {
    try {
      const served = await api("/api/serving/adapters", { json: { run: runName() } });
      location.hash = `#/chat/${encodeURIComponent(served.id)}`;
    } catch (error) { notice(message, error); }
  }

  function runName() {
    return (job?.run_dir || "").split(/[\\/]/).filter(Boolean).pop();
  }

  try {
    setJob(await api(`/api/jobs/${encodeURIComponent(id)}`));
  } catch (error) {
    notice(message, error);
    return null;
  }
  follow();
  return () => controller.abort();

  // The events stream replays the job's history, then follows it until the job ends.
  async function follow() {
    try {
      await stream(`/api/jobs/${encodeURIComponent(id)}/events`, {
        signal: controller.signal,
        onEvent(type, data) {
          if (type === "metric") chart.add(data);
          else if (type === "progress") setProgress(data);
          else if (type === "log") log(typeof data === "string" ? data : data.message ?? JSON.stringify(data));
          else if (type === "status" && data.status) setJob({ ...job, status: data.status, error: data.error ?? job.error });
        },
      });
      setJob(await api(`/api/jobs/${encodeURIComponent(id)}`));
    } catch (error) {
      if (controller.signal.aborted) return;
      notice(message, `live events unavailable (${error.message}); polling instead`, "info");
      poll();
    }
  }

  async function poll() {
    while (!controller.signal.aborted) {
      try {
        setJob(await api(`/api/jobs/${encodeURIComponent(id)}`));
        const body = await api(`/api/jobs/${encodeURIComponent(id)}/logs`).catch(() => null);
        if (body) logs.textContent = Array.isArray(body) ? body.map((l) => l.message ?? l).join("\n") : body.logs ?? show(body);
        if (!ACTIVE.includes(job.status)) return;
      } catch { /* keep polling through a hiccup */ }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

function badge(status) {
  return h("span", { className: `badge ${status}` }, status);
}

function progressText(p) {
  if (!p) return "";
  const parts = [p.task, p.total ? `${p.completed ?? 0}/${p.total}` : p.completed, p.loss !== undefined && `loss ${show(p.loss)}`];
  return parts.filter((x) => x !== undefined && x !== null && x !== false && x !== "").join(" · ");
}
