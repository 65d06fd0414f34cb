// Tasks page detail: one task's tree, history (with no-op reasons), attempts and outputs.
// Linkable as /dashboard/tasks#<task id>; asked again on every stream update, never on a timer.
"use strict";

(() => {
  const { el, table, human, ageS, authHeaders, READ_KEY } = window.dashboard;

  function link(id) {
    return el("a", { href: `#${encodeURIComponent(id)}` }, id);
  }

  async function get(path) {
    const r = await fetch(path, { headers: authHeaders(READ_KEY), cache: "no-store" });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error?.message || `${path}: ${r.status}`);
    return body;
  }

  const ago = (iso) => (iso ? `${human(ageS(iso))} ago` : "");

  async function detail(into) {
    const id = decodeURIComponent(location.hash.slice(1));
    if (!id) return into.replaceChildren();
    try {
      const path = `/api/tasks/${encodeURIComponent(id)}`;
      const [one, tree] = await Promise.all([get(path), get(`${path}/tree`)]);
      into.replaceChildren(
        el("h2", {}, `Task ${id}: ${one.task.title || ""} (${one.task.status})`),
        el("h2", {}, "Tree"),
        table([["task", (t) => link(t.id)], ["depth", (t) => t.depth], ["type", (t) => t.type],
          ["status", (t) => t.status], ["title", (t) => t.title]], tree.tasks, (t) => `tree-${t.id}`),
        el("h2", {}, "History"),
        table([["seq", (h) => h.seq], ["when", (h) => ago(h.at)], ["event", (h) => h.event], ["actor", (h) => h.actor],
          ["no-op reason", (h) => (h.noop_reason ? el("span", { class: "warn" }, h.noop_reason) : "")]],
        one.history, (h) => `history-${h.seq}`),
        el("h2", {}, "Attempts"),
        table([["attempt", (a) => a.attempt], ["agent", (a) => a.agent_id], ["started", (a) => ago(a.started_at)],
          ["finished", (a) => ago(a.finished_at)], ["outcome", (a) => a.outcome], ["exit", (a) => a.exit_code]],
        one.attempts, (a) => `attempt-${a.attempt}`),
        el("h2", {}, "Outputs"),
        table([["when", (o) => ago(o.at)], ["agent", (o) => o.agent_id], ["type", (o) => o.type],
          ["title", (o) => o.title], ["summary", (o) => o.summary]], one.outputs, (o) => `output-${o.seq}`),
      );
    } catch (e) {
      into.replaceChildren(el("p", { class: "error" }, `task ${id}: ${e.message}`));
    }
  }

  window.addEventListener("hashchange", () => window.dashboard.refresh());
  window.dashboardTasks = { detail, link };
})();
