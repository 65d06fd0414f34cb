// Requests per minute (bars) and p95 latency (line) over the last hour, as plain SVG.
// Hand-drawn rather than a vendored chart library: one chart of 60 points does not pay for one.
"use strict";

(() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 600, H = 160, PAD = 28;

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function minutes(rows, count) {
    const byMinute = new Map(rows.map((r) => [Math.floor(Date.parse(r.minute) / 60000), r]));
    const now = Math.floor(Date.now() / 60000);
    const points = [];
    for (let m = now - count + 1; m <= now; m++) points.push(byMinute.get(m) || { requests: 0, p95_latency_ms: null });
    const maxReq = Math.max(1, ...points.map((p) => p.requests));
    const maxLat = Math.max(1, ...points.map((p) => p.p95_latency_ms || 0));
    const step = (W - 2 * PAD) / count;
    const y = (v, max) => H - PAD - (v / max) * (H - 2 * PAD);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
      "aria-label": `requests per minute (max ${maxReq}) and p95 latency (max ${Math.round(maxLat)} ms), last ${count} min` });
    chart.append(svg("line", { x1: PAD, y1: H - PAD, x2: W - PAD, y2: H - PAD, stroke: "#c9ced6" }));
    points.forEach((p, i) => {
      if (!p.requests) return;
      const top = y(p.requests, maxReq);
      chart.append(svg("rect", { x: PAD + i * step + 1, y: top, width: Math.max(1, step - 2), height: H - PAD - top,
        fill: "#2f5bd3", "data-requests": p.requests }));
    });
    const line = points.map((p, i) => (p.p95_latency_ms === null ? null : `${PAD + (i + 0.5) * step},${y(p.p95_latency_ms, maxLat)}`))
      .filter(Boolean).join(" ");
    if (line) chart.append(svg("polyline", { points: line, fill: "none", stroke: "#b35900", "stroke-width": 2 }));
    chart.append(svg("text", { x: PAD, y: 14, fill: "#2f5bd3", "font-size": 11 }, `requests/min (max ${maxReq})`));
    chart.append(svg("text", { x: W - PAD, y: 14, fill: "#b35900", "font-size": 11, "text-anchor": "end" },
      `p95 latency (max ${Math.round(maxLat)} ms)`));
    chart.append(svg("text", { x: PAD, y: H - 8, fill: "#667085", "font-size": 11 }, `-${count} min`));
    chart.append(svg("text", { x: W - PAD, y: H - 8, fill: "#667085", "font-size": 11, "text-anchor": "end" }, "now"));
    return chart;
  }

  window.dashboardChart = { minutes };
})();
