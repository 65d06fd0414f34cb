// Runs and Watchdog pages. A run's whole text is linkable as /dashboard/runs#<run id> and is
// asked again (GET /api/runs/{id}) on every stream update and hash change (tasks.js listens), never on a timer.
"use strict";

(() => {
  const { el, table, cards, show, human, ageS, authHeaders, READ_KEY } = window.dashboard;
  const ago = (iso) => (iso ? `${human(ageS(iso))} ago` : "");
  const STATUS = { success: "ok", failed: "bad", skipped: "warn", running: "", following: "" };
  const duration = (ms) => (ms === null || ms === undefined ? "" : ms < 1000 ? `${ms} ms` : human(ms / 1000));
  const TAIL_LINES = 5; // the box shows the end of the tail; the whole text is a click away
  const lastLines = (text) => (text || "").replace(/\n$/, "").split("\n").slice(-TAIL_LINES).join("\n");
  const counts = (rows, key) => {
    const n = {};
    for (const r of rows) n[r[key]] = (n[r[key]] || 0) + 1;
    return Object.entries(n).sort();
  };

  async function detail(into) {
    const id = decodeURIComponent(location.hash.slice(1));
    if (!id) return into.replaceChildren();
    try {
      const r = await fetch(`/api/runs/${encodeURIComponent(id)}`, { headers: authHeaders(READ_KEY), cache: "no-store" });
      const run = await r.json();
      if (!r.ok) throw new Error(run.error?.message || `${r.status}`);
      into.replaceChildren(
        el("h2", {}, `Run ${id}: ${run.status}, ${run.lines} lines${run.message ? ` · ${run.message}` : ""}`),
        el("pre", { class: "log" }, run.content || "(no text)"),
      );
    } catch (e) {
      into.replaceChildren(el("p", { class: "error" }, `run ${id}: ${e.message}`));
    }
  }

  function runs(view) {
    const section = el("section", { id: "run-detail" });
    show(
      cards([["runs shown", view.runs.length], ...counts(view.runs, "status")]),
      el("h2", {}, "Runs, newest first"),
      table([["run", (r) => el("a", { href: `#${encodeURIComponent(r.run_id)}` }, r.run_id)],
        ["agent", (r) => r.agent_id], ["task", (r) => r.task_id], ["type", (r) => r.log_type],
        ["status", (r) => el("span", { class: STATUS[r.status] || "" }, r.status)],
        ["started", (r) => ago(r.started_at)], ["duration", (r) => duration(r.duration_ms)], ["lines", (r) => r.lines],
        ["tail", (r) => el("pre", { class: "tail" }, lastLines(r.tail))]],
      view.runs, (r) => `run-${r.run_id}`),
      section,
    );
    detail(section);
  }

  function watchdog(view) {
    const rows = view.decisions;
    show(
      cards([["decisions shown", rows.length], ...counts(rows, "decision")]),
      el("h2", {}, "Decisions, newest first"),
      table([["when", (d) => ago(d.at)], ["agent", (d) => d.agent_id], ["decision", (d) => d.decision],
        ["task", (d) => d.task_id], ["cause", (d) => el("span", { class: "wrap" }, d.cause)],
        ["step", (d) => d.step], ["action", (d) => d.action], ["told", (d) => (d.notify || []).join(" ")]],
      rows, (d) => `decision-${d.seq}`),
    );
  }

  Object.assign(window.dashboard.pages, { runs, watchdog });
})();
