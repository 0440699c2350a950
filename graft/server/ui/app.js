// The shell: hash routes (#/page/arg) to page modules, and the token box.
// A page module exports render(main, arg) and may return a cleanup function (stops its streams).

import { getToken, setToken } from "./api.js";
import { h, fill } from "./dom.js";

const PAGES = {
  models: () => import("./models.js"),
  datasets: () => import("./datasets.js"),
  new: () => import("./newrun.js"),
  jobs: () => import("./jobs.js"),
  benchmarks: () => import("./benchmarks.js"),
  chat: () => import("./chat.js"),
  rag: () => import("./rag.js"),
};

const main = document.getElementById("page");
let cleanup = null;
let shown = 0;  // counts show() calls: a page that finishes loading after the user moved on is dropped

async function show() {
  const mine = ++shown;
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] ? name : "models";
  if (cleanup) { cleanup(); cleanup = null; }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === `#/${page}`);
  }
  fill(main, h("p", { className: "muted" }, "Loading…"));
  try {
    const module = await PAGES[page]();
    if (mine !== shown) return;
    // each page renders into its own view: once the next show() replaces it, a late write lands nowhere
    const view = h("div", { className: "view" });
    fill(main, view);
    const stop = (await module.render(view, rest.map(decodeURIComponent).join("/"))) || null;
    if (mine !== shown) {  // superseded while loading: stop its streams
      if (stop) stop();
      return;
    }
    cleanup = stop;
  } catch (error) {
    if (mine === shown) fill(main, h("p", { className: "error", role: "alert" }, error.message));
  }
}

const tokenInput = document.getElementById("token");
tokenInput.value = getToken();
document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(tokenInput.value.trim());
  show();  // reload the page's data with the new token
});

window.addEventListener("hashchange", show);
show();
