// Chat playground: pick a base model or adapter from /v1/models, and read the reply as it streams.

import { api, stream } from "./api.js";
import { h, fill, notice } from "./dom.js";

export async function render(main, preselect) {
  const model = h("select", { id: "chat-model", name: "model" });
  const temperature = h("input", { type: "number", min: 0, max: 2, step: 0.1, value: 0.7, name: "temperature" });
  const maxTokens = h("input", { type: "number", min: 1, value: 128, name: "max_tokens" });
  const log = h("div", { id: "chat-log", className: "chat-log", "aria-live": "polite" });
  const input = h("textarea", { id: "chat-input", rows: 3, placeholder: "Say something… (Enter sends, Shift+Enter for a new line)" });
  const send = h("button", { type: "submit", id: "chat-send" }, "Send");
  const stop = h("button", { type: "button", disabled: true, onclick: () => controller?.abort() }, "Stop");
  const clear = h("button", { type: "button", onclick: () => { messages.length = 0; fill(log); } }, "Clear");
  const status = h("div", { className: "status" });
  const form = h("form", { className: "chat-form", onsubmit: submit }, input, h("div", { className: "row" }, send, stop, clear));
  fill(main, h("h1", {}, "Chat"),
    h("div", { className: "row" }, label("Model", model), label("Temperature", temperature), label("Max tokens", maxTokens)),
    status, log, form);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });

  const messages = [];
  let controller = null;

  try {
    const { data } = await api("/v1/models");
    fill(model, data.map((m) => h("option", { value: m.id },
      m.adapter ? `${m.id} (${m.technique || "adapter"} on ${m.base})` : `${m.id} (base)`)));
    if (preselect && data.some((m) => m.id === preselect)) model.value = preselect;
  } catch (error) { notice(status, error); }

  async function submit(event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = "";
    messages.push({ role: "user", content: text });
    log.append(bubble("user", text));
    const reply = bubble("assistant", "");
    reply.classList.add("streaming");
    log.append(reply);
    const body = reply.querySelector(".text");
    controller = new AbortController();
    send.disabled = true; stop.disabled = false;
    fill(status);
    try {
      await stream("/v1/chat/completions", {
        method: "POST", signal: controller.signal,
        json: { model: model.value, messages, stream: true, temperature: Number(temperature.value), max_tokens: Number(maxTokens.value) },
        onEvent(type, data) {
          if (data === "[DONE]") return;
          if (data.error) throw new Error(data.error.message || "the stream failed");
          const piece = data.choices?.[0]?.delta?.content;
          if (piece) { body.textContent += piece; log.scrollTop = log.scrollHeight; }
        },
      });
    } catch (error) {
      if (error.name !== "AbortError") notice(status, error);
    } finally {
      messages.push({ role: "assistant", content: body.textContent });
      reply.classList.remove("streaming");
      reply.dataset.done = "true";
      controller = null;
      send.disabled = false; stop.disabled = true;
    }
  }

  return () => controller?.abort();
}

function bubble(role, text) {
  return h("div", { className: `bubble ${role}` }, h("span", { className: "who" }, role), h("div", { className: "text" }, text));
}

function label(text, input) {
  return h("label", {}, h("span", {}, text), input);
}
