// Mirador's chat page: streams an answer's stages as they come, rates answers, and
// shows (and forgets) what Mirador remembers. Plain browser JavaScript, no build step.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
// What the page has rendered, in order, with times: tests and curious people read it.
window.mirador = { log: [] };

// -- talking to the server ------------------------------------------------------------

function token() { return localStorage.getItem("mirador-token") || ""; }

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", ...(options.headers || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    const given = prompt("This Mirador server needs its API token:");
    if (given) { localStorage.setItem("mirador-token", given); return api(path, options); }
  }
  if (!response.ok) throw new Error(await errorText(response));
  return response;
}

async function errorText(response) {
  try {
    const body = await response.json();
    const err = body.error;
    return typeof err === "string" ? err : (err && err.message) || response.statusText;
  } catch (_) {
    return `${response.status} ${response.statusText}`;
  }
}

// Server-Sent Events from a POST: EventSource only does GET, so parse the stream here.
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter(l => l.startsWith("data:")).map(l => l.slice(5).trim()).join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

// -- one answer ------------------------------------------------------------------------

function confidenceClass(c) { return c < 0.7 ? "conf-low" : c < 0.9 ? "conf-mid" : "conf-high"; }

function fmt(seconds) { return seconds == null ? "–" : `${seconds.toFixed(2)} s`; }

// Arguments on one line: name: value, long values cut.
function compactArgs(args) {
  return Object.entries(args || {}).map(([k, v]) => {
    const text = JSON.stringify(v);
    return `${k}: ${text.length > 40 ? text.slice(0, 39) + "…" : text}`;
  }).join(", ");
}

class AnswerView {
  constructor(question) {
    this.el = $("#answer-template").content.firstElementChild.cloneNode(true);
    $(".question", this.el).textContent = question;
    this.answer = $(".answer", this.el);
    this.timeline = $(".timeline", this.el);
    this.stages = {};
    this.textLength = 0;
    $("#log").appendChild(this.el);
  }

  show(event) {
    const handler = this[`on_${event.type}`];
    if (handler) handler.call(this, event);
    window.mirador.log.push({ type: event.type, t: performance.now(), length: this.textLength });
    this.el.scrollIntoView({ block: "end" });
  }

  on_ack(e) {
    this.answerId = e.answer_id;
    this.answer.dataset.answerId = e.answer_id;
    e.stages.forEach(name => this.addTimelineRow(name));
  }

  addTimelineRow(name) {
    const row = document.createElement("li");
    row.dataset.stage = name;
    row.innerHTML = `<span class="t-name"></span><span class="bar"><span></span></span><span class="t-time">waiting</span>`;
    $(".t-name", row).textContent = name;
    this.timeline.appendChild(row);
    return row;
  }

  on_stage_start(e) {
    const box = document.createElement("div");
    box.className = `stage s${e.index % 4}`;
    box.dataset.stage = e.stage;
    const head = document.createElement("span");
    head.className = "stage-head";
    head.textContent = `${e.stage} · ${e.persona} on ${e.model} · confidence ${e.confidence.toFixed(2)}`;
    box.appendChild(head);
    this.answer.appendChild(box);
    const row = $(`li[data-stage="${CSS.escape(e.stage)}"]`, this.timeline) || this.addTimelineRow(e.stage);
    row.classList.add("running");
    this.stages[e.stage] = { box, row, started: performance.now(), confidence: e.confidence };
    this.tick();
  }

  on_token(e) {
    const stage = this.stages[e.stage];
    if (!stage) return;
    const span = document.createElement("span");
    span.className = `tok ${confidenceClass(e.confidence)}`;
    span.textContent = e.text;
    stage.box.appendChild(span);
    this.textLength += e.text.length;
  }

  // A tool the stage's model called: one collapsed line (name, arguments, then the result
  // when it comes); opened, the arguments and the whole result.
  on_tool_call(e) {
    const stage = this.stages[e.stage];
    if (!stage) return;
    const box = document.createElement("details");
    box.className = "tool pending";
    box.dataset.tool = e.tool;
    box.dataset.round = e.round;
    box.innerHTML = `<summary><span class="tool-name"></span><span class="tool-args"></span><span class="tool-outcome">running…</span></summary><pre class="tool-arguments"></pre><pre class="tool-result"></pre>`;
    $(".tool-name", box).textContent = e.tool;
    $(".tool-args", box).textContent = `(${compactArgs(e.arguments)})`;
    $(".tool-arguments", box).textContent = JSON.stringify(e.arguments, null, 2);
    stage.box.appendChild(box);
  }

  on_tool_result(e) {
    const stage = this.stages[e.stage];
    if (!stage) return;
    const sel = `details.tool.pending[data-tool="${CSS.escape(e.tool)}"][data-round="${e.round}"]`;
    const box = $(sel, stage.box);
    if (!box) return;
    box.classList.remove("pending");
    box.classList.add(e.ok ? "ok" : "failed");
    const line = e.text.split("\n")[0];
    $(".tool-outcome", box).textContent = `${e.ok ? "→" : "✗"} ${line.length > 80 ? line.slice(0, 79) + "…" : line} · ${fmt(e.seconds)}`;
    $(".tool-result", box).textContent = e.text;
  }

  on_error(e) {
    const note = document.createElement("span");
    note.className = "stage-error";
    note.textContent = `[${e.status}] ${e.message}`;
    const stage = e.stage && this.stages[e.stage];
    (stage ? stage.box : this.answer).appendChild(note);
  }

  on_stage_end(e) {
    const stage = this.stages[e.stage];
    if (!stage) return;
    stage.ended = true;
    stage.row.classList.remove("running");
    if (e.status !== "ok") stage.row.classList.add("failed");
    const rate = e.tokens_per_second ? `, ${e.tokens_per_second.toFixed(0)} tok/s` : "";
    $(".t-time", stage.row).textContent = `${fmt(e.seconds)} (first ${fmt(e.ttft)}${rate})`;
    stage.seconds = e.seconds;
    this.drawBars();
  }

  on_done(e) {
    this.answer.dataset.status = e.status;
    clearTimeout(this.timer);
    this.drawBars();
    if (e.status === "error") {
      const p = document.createElement("p");
      p.className = "error";
      p.textContent = e.error;
      this.answer.appendChild(p);
      return;
    }
    this.enableRating();
  }

  tick() {  // running stages grow their bars until they end
    clearTimeout(this.timer);
    this.drawBars();
    if (Object.values(this.stages).some(s => !s.ended)) this.timer = setTimeout(() => this.tick(), 200);
  }

  drawBars() {
    const entries = Object.values(this.stages);
    const now = performance.now();
    const secs = entries.map(s => s.ended ? s.seconds : (now - s.started) / 1000);
    const total = Math.max(secs.reduce((a, b) => a + b, 0), 0.001);
    let offset = 0;
    entries.forEach((s, i) => {
      const bar = $(".bar > span", s.row);
      bar.style.left = `${(offset / total) * 100}%`;
      bar.style.width = `${Math.max((secs[i] / total) * 100, 1)}%`;
      offset += secs[i];
      if (!s.ended) $(".t-time", s.row).textContent = `${secs[i].toFixed(1)} s…`;
    });
  }

  enableRating() {
    const box = $(".rating", this.el);
    box.hidden = false;
    box.querySelectorAll("button").forEach(b => b.addEventListener("click", () => this.rate(Number(b.dataset.rating), b)));
  }

  async rate(value, button) {
    const note = $(".rated", this.el);
    try {
      await api("/mirador/rate", { method: "POST", body: JSON.stringify({ answer_id: this.answerId, rating: value }) });
      this.el.querySelectorAll(".rating button").forEach(b => b.classList.toggle("chosen", b === button));
      note.textContent = `rated ${value}/5, thank you`;
      note.classList.remove("error");
    } catch (err) {
      note.textContent = err.message;
      note.classList.add("error");
    }
  }
}

async function ask(question) {
  const view = new AnswerView(question);
  const chain = $("#chain").value;
  const body = { query: question, ...(chain ? { chain } : {}) };
  try {
    const response = await api("/mirador/ask", { method: "POST", body: JSON.stringify(body) });
    for await (const event of sseEvents(response)) view.show(event);
  } catch (err) {
    view.show({ type: "error", stage: null, status: "error", message: err.message });
    view.show({ type: "done", status: "error", error: err.message });
  }
  refreshMemory();
  refreshNotifications();
  setInterval(refreshNotifications, NOTES_EVERY_MS);
}

// -- memory --------------------------------------------------------------------------

function memoryItem(m) {
  const li = document.createElement("li");
  li.dataset.memoryId = m.id;
  li.innerHTML = `<div class="mem-q"></div><div class="mem-a"></div><div class="mem-meta"><span></span><button type="button">Forget</button></div>`;
  $(".mem-q", li).textContent = m.query || m.text || m.id;
  $(".mem-a", li).textContent = m.response || m.answer || "";
  const when = m.timestamp ? new Date(m.timestamp).toLocaleString() : "";
  const score = m.score != null ? `score ${Number(m.score).toFixed(2)}` : "";
  $(".mem-meta span", li).textContent = [score, when].filter(Boolean).join(" · ");
  $("button", li).addEventListener("click", () => forget(m.id, li));
  return li;
}

// Only the latest memory request may draw: a slow search must not bring back what was
// forgotten since it started.
let memorySeq = 0;

async function showMemories(path) {
  const list = $("#memory-list");
  const note = $("#memory-note");
  const seq = ++memorySeq;
  try {
    const data = await (await api(path)).json();
    if (seq !== memorySeq) return;
    list.replaceChildren(...data.memories.map(memoryItem));
    note.textContent = data.memories.length ? "" : "Nothing remembered here yet.";
    note.classList.remove("error");
  } catch (err) {
    if (seq !== memorySeq) return;
    note.textContent = err.message;
    note.classList.add("error");
  }
}

function refreshMemory() {
  const q = $("#memory-query").value.trim();
  return showMemories(q ? `/mirador/memory/search?q=${encodeURIComponent(q)}` : "/mirador/memory?limit=30");
}

async function forget(id, li) {
  memorySeq++;  // searches still in flight are stale now
  try {
    await api(`/mirador/memory/${encodeURIComponent(id)}`, { method: "DELETE" });
    li.remove();
    $("#memory-note").textContent = "Forgotten.";
  } catch (err) {
    $("#memory-note").textContent = err.message;
  }
}

// -- notifications from agents ---------------------------------------------------------

const NOTES_EVERY_MS = 5000;  // agents run on minutes or days: a few seconds is prompt enough

function noteItem(n) {
  const li = document.createElement("li");
  li.dataset.notificationId = n.id;
  li.dataset.status = n.status;
  li.innerHTML = `<div class="note-agent"></div><div class="note-text"></div><div class="note-meta muted"></div>`;
  $(".note-agent", li).textContent = n.agent;
  $(".note-text", li).textContent = n.text;
  const when = new Date(n.at * 1000).toLocaleString();
  $(".note-meta", li).textContent = [when, n.condition].filter(Boolean).join(" · ");
  return li;
}

async function refreshNotifications() {
  const note = $("#notes-note");
  try {
    const data = await (await api("/mirador/notifications?limit=20")).json();
    $("#notes-list").replaceChildren(...data.notifications.map(noteItem));
    note.textContent = data.notifications.length ? "" :
      (data.enabled.length ? "No results yet from: " + data.enabled.join(", ") :
        "No agent enabled (mirador agents enable NAME).");
    note.classList.remove("error");
  } catch (err) {
    note.textContent = err.message;
    note.classList.add("error");
  }
}

// -- start -----------------------------------------------------------------------------

async function start() {
  try {
    const health = await (await api("/mirador/health")).json();
    $("#status").textContent = `v${health.version} · warm: ${health.loaded.join(", ") || "none yet"}`;
    const models = await (await api("/mirador/models")).json();
    for (const chain of models.chains) {
      const option = document.createElement("option");
      option.value = chain.id;
      option.textContent = chain.id.replaceAll("_", " ");
      option.title = chain.description;
      $("#chain").appendChild(option);
    }
  } catch (err) {
    $("#status").textContent = err.message;
    $("#status").classList.add("error");
  }
  refreshMemory();
  refreshNotifications();
  setInterval(refreshNotifications, NOTES_EVERY_MS);
}

$("#ask-form").addEventListener("submit", async event => {
  event.preventDefault();
  const input = $("#query");
  const question = input.value.trim();
  if (!question) return;
  input.value = "";
  $("#send").disabled = true;
  try { await ask(question); } finally { $("#send").disabled = false; input.focus(); }
});

$("#memory-form").addEventListener("submit", event => { event.preventDefault(); refreshMemory(); });

start();
