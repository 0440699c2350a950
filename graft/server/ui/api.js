// Every call to the server goes through here: the pasted token rides along on each request.
// Streams (SSE) are read with fetch, because EventSource cannot send an Authorization header.

const TOKEN_KEY = "graft.token";

export function getToken() { return localStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token); else localStorage.removeItem(TOKEN_KEY);
}

function headers(extra = {}) {
  const token = getToken();
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

// The error text of a failed response: graft's {"error": {message, hint}}, FastAPI's {"detail"}, or the body.
async function failure(response) {
  const text = await response.text();
  let message = text || response.statusText;
  try {
    const body = JSON.parse(text);
    const err = body.error || {};
    if (err.message) message = err.message + (err.hint ? ` (${err.hint})` : "");
    else if (typeof body.detail === "string") message = body.detail;
    else if (Array.isArray(body.detail)) message = body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
  } catch { /* not JSON: keep the text */ }
  const error = new Error(`${response.status}: ${message}`);
  error.status = response.status;
  return error;
}

// api(path, {method, json, form}) -> parsed JSON (or the Response for non-JSON bodies with raw: true)
export async function api(path, { method, json, form, raw, signal } = {}) {
  const init = { method: method || (json || form ? "POST" : "GET"), headers: headers(), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;  // the browser sets the multipart boundary
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

// Reads a Server-Sent Events stream; onEvent(type, data) per event (data parsed as JSON when it is JSON).
export async function stream(path, { method = "GET", json, signal, onEvent }) {
  const init = { method, headers: headers({ Accept: "text/event-stream" }), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end), onEvent);
      buffer = buffer.slice(end + 2);
    }
  }
  if (buffer.trim()) dispatch(buffer, onEvent);
}

function dispatch(block, onEvent) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;  // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  const text = data.join("\n");
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* plain text, e.g. [DONE] */ }
  onEvent(type, parsed);
}
