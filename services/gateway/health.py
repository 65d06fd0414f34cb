"""`/health` and `/metrics`: what an orchestrator and Prometheus ask.

Health is ok only when NATS is connected and every projection applies events; otherwise 503
with the reason, so a load balancer stops sending traffic to a gateway that would answer stale
or not at all. A backend whose key cannot be opened makes the proxy `degraded` (200, the
backend and key id named under `proxy.unroutable`): the other backends still serve.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from projections.runtime.protocol import QueryError
from services.gateway import fleet
from services.gateway.body import json_response
from services.gateway.keys import NC, PROXY, QUERIES, SETTINGS, TELEMETRY
from services.runtime.telemetry import Observed

log = logging.getLogger(__name__)
HEALTH_TIMEOUT_S = 2.0
OUTCOMES = ("delivered", "failed", "rate_limited", "timeout")  # zeros for series known in advance


async def projections_health(request: web.Request) -> tuple[dict[str, Any] | None, str | None]:
    if not request.app[NC].is_connected:
        return None, "NATS is not connected"
    try:
        projections = await request.app[QUERIES].health(timeout=HEALTH_TIMEOUT_S)
    except QueryError as exc:
        return None, f"projector: {exc.message}"
    sick = {n: p.get("error") or "unhealthy" for n, p in projections.items() if not p.get("healthy")}
    if sick:
        return projections, "; ".join(f"projection {n}: {e}" for n, e in sorted(sick.items()))
    return projections, None


def proxy_health(request: web.Request) -> dict[str, Any]:
    """Degraded, not down: backends whose key cannot be opened are out of routing, the rest serve."""
    ctx = request.app.get(PROXY)
    errors = dict(sorted(ctx.fold.key_errors.items())) if ctx is not None else {}
    if errors:
        return {"status": "degraded", "unroutable": errors}
    return {"status": "ok"}


async def get_health(request: web.Request) -> web.Response:
    projections, reason = await projections_health(request)
    proxy = proxy_health(request)
    body: dict[str, Any] = {
        "status": "unavailable" if reason is not None else proxy["status"],
        "nats": "connected" if request.app[NC].is_connected else "disconnected",
        "projections": projections or {},
        "proxy": proxy,
        "time": time.time(),
    }
    if reason is not None:
        body["reason"] = reason
        return json_response(body, status=503)
    return json_response(body)


async def _report_metrics(request: web.Request, observed: Observed) -> None:
    rows = (await request.app[QUERIES].query("reports", "metrics")).records()
    now = time.time()
    observed.report_pending = {r["target"]: float(r["pending"]) for r in rows}
    observed.report_oldest_s = {r["target"]: max(0.0, now - r["oldest_pending_s"]) if r["oldest_pending_s"] else 0.0
                                for r in rows}
    counts = {(r["target"], o): 0.0 for r in rows for o in OUTCOMES}
    counts |= {(r["target"], r["outcome"]): float(r["n"]) for r in rows if r["outcome"]}
    observed.report_deliveries = counts


async def get_metrics(request: web.Request) -> web.Response:
    """Pull the values held by the projector, then render the Prometheus exposition."""
    telemetry = request.app[TELEMETRY]
    observed = telemetry.observed
    projections, _ = await projections_health(request)
    if projections is not None:
        observed.lag = {n: float(p.get("lag") or 0) for n, p in projections.items()}
        observed.healthy = {n: 1.0 if p.get("healthy") else 0.0 for n, p in projections.items()}
        observed.rejects = float(sum(int(p.get("rejects") or 0) for p in projections.values()))
        if "agents" in projections:
            try:
                rows = await request.app[QUERIES].query("agents", "heartbeat_timestamps")
                observed.heartbeats = {str(r[0]): float(r[1]) for r in rows.rows if r[1] is not None}
            except QueryError as exc:
                log.warning("metrics: heartbeat timestamps unavailable: %s", exc.message)
        if "calendar" in projections:
            try:
                wakes = await request.app[QUERIES].query("calendar", "wake_counts")
                ages = await request.app[QUERIES].query("calendar", "sync_ages")
                observed.calendar_wakes = {str(r[0]): float(r[1]) for r in wakes.rows}
                observed.calendar_sync_age = {str(r[0]): float(r[1]) for r in ages.rows if r[1] is not None}
            except QueryError as exc:
                log.warning("metrics: calendar figures unavailable: %s", exc.message)
        if "reports" in projections:
            try:
                await _report_metrics(request, observed)
            except QueryError as exc:
                log.warning("metrics: report queues unavailable: %s", exc.message)
    fleet_text = await fleet.render(
        request.app[QUERIES], request.app[SETTINGS], nats_connected=request.app[NC].is_connected
    )
    return web.Response(
        body=telemetry.prometheus_text() + fleet_text,
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
