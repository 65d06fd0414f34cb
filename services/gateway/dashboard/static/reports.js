// Reports page: each target's queue (depth, age of its oldest pending report) and the newest
// reports with every delivery and attempt. Read-only: the gateway has no HTTP route to retry or
// abandon a delivery yet, so the page names the CLI commands that do it.
"use strict";

(() => {
  const { el, table, cards, show, human, ageS, future } = window.dashboard;
  const ago = (iso) => (iso ? `${human(ageS(iso))} ago` : "");
  const STATE = { delivered: "ok", pending: "warn", abandoned: "bad" };
  const state = (s) => el("span", { class: STATE[s] || "" }, s);

  function reports(view) {
    const pending = view.queues.reduce((n, q) => n + q.pending, 0);
    const oldest = view.queues.map((q) => q.oldest_pending_at).sort()[0] || null;
    const byReport = {};
    for (const d of view.deliveries) (byReport[d.report_id] ||= []).push(d);
    const deliveries = (r) => el("span", {}, (byReport[r.id] || []).map((d) =>
      el("span", { class: STATE[d.status] || "" }, `${d.target}: ${d.status} (${d.attempts}) `)));
    show(
      cards([["targets with a queue", view.queues.length], ["pending deliveries", pending, pending ? "warn" : "ok"],
        ["oldest pending", oldest ? human(ageS(oldest)) : "none"]]),
      el("h2", {}, "Queues per target"),
      table([["target", (q) => q.target], ["depth", (q) => q.pending],
        ["oldest pending", (q) => el("span", { class: "age", "data-at": q.oldest_pending_at }, human(ageS(q.oldest_pending_at)))]],
      view.queues, (q) => `queue-${q.target}`),
      el("h2", {}, `Recent reports${view.truncated ? " (the newest only)" : ""}`),
      table([["report", (r) => r.id], ["filed", (r) => ago(r.filed_at)], ["state", (r) => state(r.state)],
        ["title", (r) => r.title || r.progress || r.status], ["source", (r) => r.source || r.worker],
        ["severity", (r) => r.severity], ["deliveries (attempts)", deliveries]],
      view.reports, (r) => `report-${r.id}`),
      el("h2", {}, "Attempts"),
      table([["when", (a) => ago(a.at)], ["report", (a) => a.report_id], ["target", (a) => a.target],
        ["attempt", (a) => a.attempt], ["outcome", (a) => el("span", { class: a.outcome === "delivered" ? "ok" : "warn" }, a.outcome)],
        ["status", (a) => a.status_code], ["next retry", (a) => future(a.retry_at)], ["error", (a) => el("span", { class: "error" }, a.error || "")]],
      view.attempts, (a) => `attempt-${a.seq}`),
      el("p", { class: "note" }, "Retry or abandon a delivery with ", el("code", {}, "agentledger reports retry|abandon <id>"),
        " or ", el("code", {}, "POST /api/reports/<id>/retry|abandon"), " with the admin token (this page only reads)."),
    );
  }

  window.dashboard.pages.reports = reports;
})();
