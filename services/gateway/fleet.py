"""The seed's agent health exporter, on `/metrics`, computed from the projections at each scrape.

Same names and labels as the seed's exporter (`agent_task_stagnation_seconds{agent_name,
agent_label}`, `agent_429_error_rate{agent_name}`, `agent_response_time_seconds{agent_name,
agent_label}`, `agent_heartbeat_status{agent_name,agent_label}`, `agent_workboard_pending{type}`),
so its Grafana dashboard and alerts work unchanged; plus `agentledger_watchdog_decisions_total
{decision}`. Nothing is kept in memory: a gateway restarted a second ago answers the same.

- heartbeat status: 1 while the last heartbeat is younger than the agent's stall warning (its
  class in force, its registration), else 0 (never heard: 0);
- stagnation: seconds since the agent's oldest held (claimed or working) task last changed;
- 429 rate: the agent's attempts classified `api_error` (the seed's gauge was a count too);
- response time: the mean duration of the agent's finished runs;
- pending: pending tasks per type (fix, regular, creative), zeros included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from events.watchdog import for_agent
from projections.runtime.protocol import QueryClient, QueryError
from projections.watchdog import DECISIONS
from services.settings import Settings

log = logging.getLogger(__name__)
TASK_TYPES = ("fix", "regular", "creative")


async def _records(queries: QueryClient, projection: str, name: str) -> list[dict[str, Any]] | None:
    try:
        return (await queries.query(projection, name)).records()
    except QueryError as exc:  # that projection is not hosted or not answering: leave its series out
        log.warning("metrics: %s.%s unavailable: %s", projection, name, exc.message)
        return None


async def render(
    queries: QueryClient, settings: Settings, *, nats_connected: bool, now: float | None = None
) -> bytes:
    now = time.time() if now is None else now
    agents = await _records(queries, "agents", "health") or []
    held = {r["agent_id"]: r["since"] for r in await _records(queries, "tasks", "held_since") or []}
    errors = {r["agent_id"]: r["n"] for r in await _records(queries, "tasks", "api_errors") or []}
    pending = await _records(queries, "tasks", "pending_by_type")
    times = {r["agent_id"]: r["seconds"] for r in await _records(queries, "runs", "response_times") or []}
    decisions = await _records(queries, "watchdog", "counts")
    classes = settings.classes()

    def label(a: dict[str, Any]) -> list[str]:
        return [a["id"], a["display_name"] or a["id"]]

    stagnation = GaugeMetricFamily("agent_task_stagnation_seconds",
                                   "Agent task stagnation duration in seconds",
                                   labels=["agent_name", "agent_label"])
    rate = GaugeMetricFamily("agent_429_error_rate", "429 error count", labels=["agent_name"])
    response = GaugeMetricFamily("agent_response_time_seconds", "Agent response time in seconds",
                                 labels=["agent_name", "agent_label"])
    status = GaugeMetricFamily("agent_heartbeat_status", "Agent heartbeat status (1=healthy, 0=stale)",
                               labels=["agent_name", "agent_label"])
    for a in agents:
        rules = for_agent(classes, a["class"], **{k: a[k] for k in (
            "heartbeat_interval_s", "stall_warning_s", "recovery_s", "max_rounds", "dependency_wait_s")})
        beat = a["last_heartbeat_s"]
        status.add_metric(label(a), 1.0 if beat is not None and now - beat < rules.stall_warning_s else 0.0)
        since = held.get(a["id"])
        stagnation.add_metric(label(a), max(now - since, 0.0) if since is not None else 0.0)
        rate.add_metric([a["id"]], float(errors.get(a["id"], 0)))
        response.add_metric(label(a), float(times.get(a["id"]) or 0.0))
    nats = GaugeMetricFamily("agentledger_nats_connected", "1 while this gateway has a NATS connection")
    nats.add_metric([], 1.0 if nats_connected else 0.0)
    families = [stagnation, rate, response, status, nats]
    if pending is not None:
        by_type = {r["type"]: r["n"] for r in pending}
        board = GaugeMetricFamily("agent_workboard_pending", "Pending workboard task count", labels=["type"])
        for t in TASK_TYPES:
            board.add_metric([t], float(by_type.get(t, 0)))
        families.append(board)
    if decisions is not None:
        counts = {r["decision"]: r["n"] for r in decisions}
        total = CounterMetricFamily("agentledger_watchdog_decisions", "Decisions the watchdog recorded",
                                    labels=["decision"])
        for d in DECISIONS:
            total.add_metric([d], float(counts.get(d, 0)))
        families.append(total)
    return generate_latest(_OneShot(families))


class _OneShot(CollectorRegistry):
    def __init__(self, families: list[Any]) -> None:
        super().__init__(auto_describe=False)
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families
