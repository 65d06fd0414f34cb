// Providers page: pools, backends (masked keys) with an add/edit form, cooldown log, usage.
// Every change goes through the admin API with the admin token of this session; the table is
// redrawn from the next stream event, i.e. once the projections have applied the change.
"use strict";

(() => {
  const { el, table, cards, show, human, ageS, future, authHeaders, ADMIN_KEY } = window.dashboard;
  let editing = null;
  let last = null;
  let formNode = null;
  let formFor;

  function field(label, name, value, attrs) {
    return el("label", {}, label, el("input", { name, value: value ?? "", ...(attrs || {}) }));
  }

  function form(backend) {
    const pool = el("select", { name: "pool" }, ["primary", "fallback"].map((p) =>
      el("option", p === (backend?.pool || "primary") ? { value: p, selected: "" } : { value: p }, p)));
    const enabled = el("select", { name: "enabled" }, [["true", "enabled"], ["false", "disabled"]].map(([v, t]) =>
      el("option", String(backend ? backend.enabled : true) === v ? { value: v, selected: "" } : { value: v }, t)));
    const message = el("span", { class: "note", id: "backend-message" });
    const node = el("form", { class: "backend", id: "backend-form" },
      el("strong", {}, backend ? `Edit ${backend.id}` : "Add a backend"),
      backend ? null : field("id", "id", "", { placeholder: "optional" }),
      field("name", "name", backend?.name, { required: "" }),
      field("base URL", "api_base_url", backend?.api_base_url, { required: "", placeholder: "https://…/v1" }),
      field(backend ? "new API key (blank: keep)" : "API key", "api_key", "",
        { type: "password", autocomplete: "off", ...(backend ? {} : { required: "" }) }),
      el("label", {}, "pool", pool), el("label", {}, "state", enabled),
      field("RPM limit", "rpm_limit", backend?.rpm_limit ?? 40, { type: "number", min: "1" }),
      el("button", { type: "submit" }, backend ? "Save" : "Add"),
      backend ? el("button", { type: "button", onclick: () => { editing = null; render(last); } }, "Cancel") : null,
      message);
    node.addEventListener("submit", async (e) => {
      e.preventDefault();
      const data = Object.fromEntries(new FormData(node));
      const body = { name: data.name, api_base_url: data.api_base_url, pool: data.pool,
        enabled: data.enabled === "true", rpm_limit: Number(data.rpm_limit) };
      if (data.api_key) body.api_key = data.api_key;
      if (!backend && data.id) body.id = data.id;
      const r = await fetch(backend ? `/api/admin/backends/${backend.id}` : "/api/admin/backends", {
        method: backend ? "PUT" : "POST", body: JSON.stringify(body),
        headers: { ...authHeaders(ADMIN_KEY), "Content-Type": "application/json" },
      });
      const answer = await r.json();
      if (r.status === 401) sessionStorage.removeItem(ADMIN_KEY);
      message.className = r.ok ? "ok" : "error";
      message.textContent = r.ok ? `saved ${answer.id}` : `${answer.error.field || ""} ${answer.error.message}`;
      if (r.ok) { editing = null; node.reset(); }
    });
    return node;
  }

  function usage(rows, unit) {
    return table([[unit, (r) => r[unit]], ["backend", (r) => r.backend_id], ["model", (r) => r.model],
      ["requests", (r) => r.requests], ["errors", (r) => r.errors],
      ["tokens", (r) => r.total_tokens], ["cost", (r) => r.cost],
      ["avg latency ms", (r) => Math.round(r.avg_latency_ms ?? 0)],
      ["p95 latency ms", (r) => Math.round(r.p95_latency_ms ?? 0)]], rows);
  }

  // The form node outlives redraws, so an update arriving while someone types keeps their input.
  function currentForm(backend) {
    const key = backend ? backend.id : null;
    if (formNode === null || formFor !== key) {
      formNode = form(backend);
      formFor = key;
    }
    return formNode;
  }

  function render(data) {
    last = data;
    const { backends, pools, total, hourly, daily, cooldowns, minutes } = data;
    const list = backends.backends;
    const pool = (name) => pools.pools[name];
    show(
      cards([["backends", list.length], ["primary healthy", `${pool("primary").healthy} / ${pool("primary").total}`],
        ["fallback healthy", `${pool("fallback").healthy} / ${pool("fallback").total}`],
        ["cooling", pool("primary").cooling + pool("fallback").cooling],
        ["requests", total.total_requests ?? 0], ["errors", total.total_errors ?? 0],
        ["tokens", total.total_tokens ?? 0], ["cost", total.total_cost ?? 0]]),
      el("h2", {}, `Requests and latency, last ${minutes.minutes} minutes`),
      window.dashboardChart.minutes(minutes.rows, minutes.minutes),
      el("h2", {}, "Backends"),
      table([["id", (b) => b.id], ["name", (b) => b.name], ["pool", (b) => b.pool],
        ["status", (b) => el("span", { class: b.status === "healthy" ? "ok" : b.status === "cooling" ? "warn" : "" }, b.status)],
        ["key", (b) => el("code", { class: "key" }, b.api_key)], ["RPM", (b) => b.rpm_limit],
        ["cooldown", (b) => future(b.cooldown_until)], ["base URL", (b) => b.api_base_url],
        ["", (b) => el("button", { type: "button", onclick: () => { editing = b; render(last); } }, "edit")]],
      list, (b) => b.id),
      currentForm(editing && list.find((b) => b.id === editing.id)),
      el("h2", {}, "Cooldown log"),
      table([["started", (c) => `${human(ageS(c.started))} ago`], ["backend", (c) => c.backend_id],
        ["length s", (c) => Math.round(c.length_s)], ["reason", (c) => c.reason], ["consecutive 429s", (c) => c.consecutive],
        ["ended", (c) => (c.ended ? `${human(ageS(c.ended))} ago` : future(c.until) || "over")]],
      cooldowns.cooldowns, (c) => `cooldown-${c.backend_id}-${c.seq}`),
      el("h2", {}, "Usage by hour (24 h)"), usage(hourly.rows, "hour"),
      el("h2", {}, "Usage by day (30 days)"), usage(daily.rows, "day"),
    );
  }

  window.dashboardProviders = { render };
})();
