// agentledger dashboard: one stream of page data from /dashboard/sse, rendered with plain DOM.
// The stream is read with fetch (not EventSource) so a read token can travel in the
// Authorization header rather than the URL; reconnects send Last-Event-ID like EventSource does.
// Tokens live in sessionStorage only (gone when the tab closes), never in URLs or localStorage.
"use strict";

const PAGE = document.body.dataset.page;
const READ_KEY = "agl.readToken";
const ADMIN_KEY = "agl.adminToken";
const STALE_MS = 12000;
const link = { lastId: null, dataAt: null, aliveAt: null, up: false, retryMs: 1000, view: null };

// -- DOM ------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function table(columns, rows, rowId) {
  const head = el("tr", {}, columns.map(([title]) => el("th", {}, title)));
  const body = rows.map((r) => el("tr", rowId ? { "data-id": rowId(r) } : {},
    columns.map(([, cell]) => { const v = cell(r); return v instanceof Node ? el("td", {}, v) : el("td", {}, v ?? ""); })));
  if (!rows.length) body.push(el("tr", {}, el("td", { colspan: columns.length, class: "note" }, "none")));
  return el("div", { class: "scroll" }, el("table", {}, el("thead", {}, head), el("tbody", {}, body)));
}

function cards(items) {
  return el("div", { class: "cards" }, items.map(([label, value, cls]) =>
    el("div", { class: "card" }, el("b", cls ? { class: cls } : {}, value), el("span", {}, label))));
}

function show(...nodes) {
  document.getElementById("view").replaceChildren(...nodes);
}

// -- time -----------------------------------------------------------------------------------

function ageS(iso) {
  return iso ? Math.max(0, (Date.now() - Date.parse(iso)) / 1000) : null;
}

function human(seconds) {
  if (seconds === null) return "never";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

function future(iso) {
  return iso && Date.parse(iso) > Date.now() ? `until ${new Date(iso).toLocaleTimeString()}` : "";
}

// -- tokens ---------------------------------------------------------------------------------

function authHeaders(key) {
  const token = sessionStorage.getItem(key) || (key === READ_KEY ? sessionStorage.getItem(ADMIN_KEY) : null);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function askToken(key, label, why, then) {
  const form = document.getElementById("token-form");
  document.getElementById("token-label").textContent = label;
  document.getElementById("token-note").textContent = why;
  form.classList.remove("hidden");
  form.onsubmit = (e) => {
    e.preventDefault();
    const input = document.getElementById("token-input");
    sessionStorage.setItem(key, input.value.trim());
    input.value = "";
    form.classList.add("hidden");
    then();
  };
}

// -- the stream -----------------------------------------------------------------------------

function setLink() {
  const badge = document.getElementById("link");
  const since = link.dataAt ? `updated ${human((Date.now() - link.dataAt) / 1000)} ago` : "no data yet";
  const alive = link.aliveAt && Date.now() - link.aliveAt < STALE_MS;
  badge.className = `link ${link.up && alive ? "up" : link.up ? "stale" : "down"}`;
  badge.textContent = link.up ? (alive ? `live · ${since}` : `no word from the server · ${since}`)
    : `disconnected · ${since}`;
  badge.dataset.state = link.up ? "live" : "disconnected";
}

function onEvent(event, data, id) {
  link.aliveAt = Date.now();
  if (event === "data") {
    link.view = data.view;
    try {
      render(data.view);
    } catch (e) {
      console.error(`rendering ${PAGE} failed:`, e); // loud, and not marked as shown: a reconnect resends it
      return;
    }
    link.lastId = id;
    link.dataAt = Date.now();
  } else if (event === "unavailable") {
    document.getElementById("link").title = data.message;
  }
  setLink();
}

function parse(block) {
  let event = "message", id = null;
  const data = [];
  for (const line of block.split("\n")) {
    const [field, ...rest] = line.split(":");
    const value = rest.join(":").replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
    else if (field === "retry") link.retryMs = Number(value) || link.retryMs;
  }
  return data.length ? [event, JSON.parse(data.join("\n")), id] : null;
}

async function connect() {
  const headers = authHeaders(READ_KEY);
  if (link.lastId) headers["Last-Event-ID"] = link.lastId;
  let response;
  try {
    response = await fetch(`/dashboard/sse?page=${PAGE}`, { headers, cache: "no-store" });
  } catch (e) {
    return reconnect();
  }
  if (response.status === 401) {
    sessionStorage.removeItem(READ_KEY);
    link.up = false;
    setLink();
    askToken(READ_KEY, "Read token", "this gateway needs a token to read (read_auth = token)", connect);
    return;
  }
  if (!response.ok) return reconnect();
  link.up = true;
  link.aliveAt = Date.now();
  setLink();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const parsed = parse(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (parsed) onEvent(...parsed);
      }
    }
  } catch (e) {
    // the connection dropped: fall through to reconnect
  }
  reconnect();
}

function reconnect() {
  link.up = false;
  setLink();
  setTimeout(connect, link.retryMs);
}

// -- pages ----------------------------------------------------------------------------------

function heartbeatClass(agent, classes) {
  const limits = classes[agent.class] || classes.dev;
  const age = ageS(agent.last_heartbeat_at);
  if (age === null) return "bad";
  return age <= limits.heartbeat_interval_s ? "ok" : age <= limits.stall_warning_s ? "warn" : "bad";
}

function fleet(view) {
  const agents = view.agents;
  const classes = view.classes;
  const count = (s) => agents.filter((a) => a.status === s).length;
  const late = agents.filter((a) => heartbeatClass(a, classes) === "bad").length;
  const rounds = (a) => {
    const max = (classes[a.class] || classes.dev).max_rounds;
    const cls = a.round >= max ? "bad" : a.round >= max * view.round_warning_ratio ? "warn" : "";
    return el("span", { class: cls }, `${a.round ?? 0} / ${max}`);
  };
  show(
    cards([["agents", agents.length], ["busy", count("busy")], ["idle", count("idle")],
      ["offline", count("offline")], ["exhausted", count("exhausted")], ["heartbeat late", late, late ? "bad" : "ok"]]),
    el("h2", {}, "Agents"),
    table([
      ["agent", (a) => a.id], ["class", (a) => a.class || "unregistered"], ["status", (a) => a.status],
      ["current task", (a) => a.current_task],
      ["heartbeat", (a) => el("span", { class: `age ${heartbeatClass(a, classes)}`, "data-at": a.last_heartbeat_at || "" },
        human(ageS(a.last_heartbeat_at)))],
      ["round / limit", rounds], ["cooldown", (a) => future(a.cooldown_until)],
      ["last woken", (a) => (a.last_woken_at ? `${human(ageS(a.last_woken_at))} ago` : "")],
      ["last outcome", (a) => (a.last_outcome ? el("span", { class: a.last_outcome === "completed" ? "ok" : "warn" },
        `${a.last_outcome} (${a.last_outcome_task})`) : "")],
      ["heartbeats", (a) => a.heartbeats],
    ], agents, (a) => a.id),
  );
}

function tasks(view) {
  const section = el("section", { id: "task-detail" });
  const byStatus = {};
  for (const t of view.tasks) byStatus[t.status] = (byStatus[t.status] || 0) + 1;
  const { detail, link: taskLink } = window.dashboardTasks;
  const columns = [["task", (t) => taskLink(t.id)], ["type", (t) => t.type], ["priority", (t) => t.priority],
    ["level", (t) => t.level], ["status", (t) => t.status], ["assignee", (t) => t.assignee],
    ["title", (t) => el("span", {}, t.title || "")], ["attempts", (t) => t.attempts]];
  show(
    cards(Object.entries(byStatus).sort().map(([s, n]) => [s, n])),
    el("h2", {}, `Actionable queue, in claim order (${view.actionable.length})`),
    table(columns, view.actionable, (t) => t.id),
    el("h2", {}, `All tasks${view.truncated ? " (truncated)" : ""}`),
    table([...columns, ["last error", (t) => t.last_error]], view.tasks, (t) => t.id),
    section,
  );
  detail(section);
}

function ledger(view) {
  const projections = Object.entries(view.projections).map(([name, p]) => ({ name, ...p }));
  const field = (error) => (String(error).match(/\$[\w.[\]]*/) || [""])[0];
  show(
    el("h2", {}, "Streams"),
    table([["stream", (s) => s.name], ["subjects", (s) => s.subjects.join(" ")], ["messages", (s) => s.messages],
      ["bytes", (s) => s.bytes], ["last seq", (s) => s.last_seq]], view.streams, (s) => s.name),
    el("h2", {}, "Projections"),
    table([["projection", (p) => p.name],
      ["health", (p) => el("span", { class: p.healthy ? "ok" : "bad" }, p.healthy ? "healthy" : p.error || "unhealthy")],
      ["checkpoints", (p) => Object.entries(p.checkpoints || {}).map(([s, n]) => `${s}:${n}`).join(" ")],
      ["lag", (p) => el("span", { class: p.lag ? "warn" : "ok" }, p.lag)], ["rejects", (p) => p.rejects],
      ["last batch", (p) => (p.last_batch_at ? `${human(ageS(p.last_batch_at))} ago` : "none")],
      ["snapshot age", (p) => (p.snapshot_at ? el("span", { class: "age", "data-at": p.snapshot_at }, human(ageS(p.snapshot_at)))
        : "none yet")]],
    projections, (p) => p.name),
    el("h2", {}, `Rejects (${view.rejects.length})`),
    table([["stream", (r) => r.stream], ["seq", (r) => r.seq], ["subject", (r) => r.subject],
      ["field", (r) => field(r.error)], ["reason", (r) => el("span", { class: "error" }, r.error)]],
    view.rejects, (r) => `${r.stream}-${r.seq}`),
  );
}

function calendar(view) {
  const outcomes = {};
  for (const s of view.slots) if (s.outcome) outcomes[s.outcome] = (outcomes[s.outcome] || 0) + 1;
  const agents = new Set(view.slots.map((s) => s.agent_id));
  show(
    cards([["agents with slots", agents.size], ["slots", view.slots.length], ...Object.entries(outcomes).sort()]),
    el("h2", {}, `The day ${view.date}, per agent`),
    table([["agent", (s) => s.agent_id], ["time", (s) => s.scheduled_at], ["status", (s) => s.status],
      ["type", (s) => s.slot_type], ["priority", (s) => s.priority], ["source", (s) => s.source],
      ["wake", (s) => (s.outcome ? el("span", { class: s.outcome === "woken" ? "ok" : "warn" }, s.outcome) : "not due yet")],
      ["reason", (s) => s.reason || s.detail]],
    view.slots, (s) => `slot-${s.agent_id}-${s.slot_id}`),
  );
}

// The providers page asks the admin API itself: its rows need the admin token, which only the
// browser holds; the stream only says when to ask again.
async function providers() {
  if (!sessionStorage.getItem(ADMIN_KEY)) {
    show(el("p", { class: "note" }, "Backends and usage need the admin token."));
    askToken(ADMIN_KEY, "Admin token", "kept for this browser session only", providers);
    return;
  }
  const get = async (path) => {
    const r = await fetch(path, { headers: authHeaders(ADMIN_KEY), cache: "no-store" });
    if (r.status === 401) throw new Error("the admin token was refused");
    if (!r.ok) throw new Error(`${path}: ${r.status} ${(await r.json()).error?.message || ""}`);
    return r.json();
  };
  try {
    const [backends, pools, total, hourly, daily, cooldowns, minutes] = await Promise.all([
      get("/api/admin/backends"), get("/api/admin/pools"), get("/api/admin/stats/total"),
      get("/api/admin/stats/hourly"), get("/api/admin/stats/daily"), get("/api/admin/stats/cooldown"),
      get("/api/admin/stats/minutes")]);
    window.dashboardProviders.render({ backends, pools, total, hourly, daily, cooldowns, minutes });
  } catch (e) {
    if (String(e.message).includes("refused")) sessionStorage.removeItem(ADMIN_KEY);
    show(el("p", { class: "error" }, e.message));
  }
}

const PAGES = { fleet, tasks, ledger, providers, calendar };

function render(view) {
  if (view && view.note) show(el("p", { class: "note" }, view.note));
  else if (view) PAGES[PAGE](view);
}

// Pages of later domains live in their own files and add themselves to PAGES.
window.dashboard = {
  el, table, cards, show, human, ageS, future, authHeaders, ADMIN_KEY, READ_KEY, pages: PAGES,
  refresh: () => render(link.view),
};

document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === PAGE));
setInterval(() => {
  setLink();
  document.querySelectorAll("span.age[data-at]").forEach((s) => { s.textContent = human(ageS(s.dataset.at || null)); });
}, 1000); // redraws ages only: no request
// Only once every deferred script ran: a page's renderer may live in a later file (runs.js...),
// and a view arriving before it would find no renderer.
document.addEventListener("DOMContentLoaded", connect);
