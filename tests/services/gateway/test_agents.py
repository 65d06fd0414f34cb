"""The agents slice end to end: raw `nats pub` -> JetStream -> projector -> DuckDB -> HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from services.gateway.app import create_app
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import raw_pub, running
from tests.polling import eventually
from tests.services.gateway.admin_auth import ADMIN_TOKEN, AS_ADMIN

Client = TestClient[Any, Any]


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(admin_token=ADMIN_TOKEN, nats_url=nats_url, home=str(tmp_path), batch_ms=20, snapshot_interval_s=0.5)


@pytest.fixture
async def projector(client: EventClient, settings: Settings) -> AsyncIterator[ProjectorHost]:
    async with running(ProjectorHost(settings, client.nc, ["agents"])) as host:
        yield host


@pytest.fixture
async def http(projector: ProjectorHost, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_app(settings), headers=AS_ADMIN)


async def test_raw_heartbeat_appears_in_the_agents_api_within_a_second(http: Client, nats_url: str) -> None:
    await raw_pub(nats_url, "agents.architect.heartbeat",
                  b'{"status":"busy","current_task":"TC-FLOW-001","round":3}')

    async def listed() -> list[dict[str, Any]]:
        r = await http.get("/api/agents")
        return [a for a in (await r.json())["agents"] if a["id"] == "architect"]

    start = time.monotonic()
    (agent,) = await eventually(listed, timeout=5.0)
    elapsed = time.monotonic() - start
    assert agent["status"] == "busy" and agent["current_task"] == "TC-FLOW-001" and agent["round"] == 3
    assert agent["heartbeats"] == 1
    print(f"heartbeat visible after {elapsed * 1000:.0f} ms")
    one = await http.get("/api/agents/architect")
    assert one.status == 200 and (await one.json())["status"] == "busy"


async def test_unknown_agent_is_404_with_a_message(http: Client) -> None:
    r = await http.get("/api/agents/nobody")
    assert r.status == 404
    assert "nobody" in (await r.json())["error"]["message"]


async def test_invalid_agent_id_is_422(http: Client) -> None:
    r = await http.get("/api/agents/bad%20id")
    assert r.status == 422


async def test_raw_invalid_heartbeat_is_listed_in_rejects_with_the_field(http: Client, nats_url: str) -> None:
    await raw_pub(nats_url, "agents.architect.heartbeat", b'{"status": 5}')

    async def rejects() -> list[dict[str, Any]]:
        return (await (await http.get("/api/rejects")).json())["rejects"]

    (reject,) = await eventually(rejects)
    assert reject["subject"] == "agents.architect.heartbeat"
    assert "$.status" in reject["error"]
    health = await http.get("/health")
    assert health.status == 200, await health.text()


async def test_sql_answers_selects_and_refuses_the_rest(http: Client, client: EventClient) -> None:
    seq = await client.publish("qa", AgentHeartbeat(status="idle"))

    async def count() -> Any:
        r = await http.post("/api/sql", json={"projection": "agents", "sql": "SELECT count(*) AS n FROM agents"})
        body = await r.json()
        return body if body["rows"] == [[1]] else None

    body = await eventually(count)
    assert body["columns"] == ["n"] and seq == 1
    r = await http.post("/api/sql", json={"projection": "agents", "sql": "DELETE FROM agents"})
    assert r.status == 400
    for side_effect in ("SELECT * FROM checkpoint()", "SELECT * FROM force_checkpoint()"):
        r = await http.post("/api/sql", json={"projection": "agents", "sql": side_effect})
        assert r.status == 400 and "is not allowed" in (await r.json())["error"]["message"]
    r = await http.post("/api/sql", json={"projection": "agents"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "$.sql"


async def test_health_ok_and_metrics_show_heartbeat_timestamps(http: Client, client: EventClient) -> None:
    await client.publish("coo", AgentHeartbeat(status="idle"))

    async def healthy() -> Any:
        r = await http.get("/health")
        return r.status == 200 and (await r.json())

    body = await eventually(healthy)
    assert body["status"] == "ok" and "agents" in body["projections"]

    async def heartbeat_metric() -> Any:
        text = await (await http.get("/metrics")).text()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        fam = fams.get("agentledger_agent_heartbeat_timestamp_seconds")
        return fam and [s for s in fam.samples if s.labels.get("agent") == "coo"]

    (sample,) = await eventually(heartbeat_metric)
    assert abs(sample.value - time.time()) < 60


async def test_a_request_trace_reaches_the_projector_batch_span(http: Client, spans: Any) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = await http.post(
        "/api/events", json={"subject": "agents.tracer.heartbeat", "data": {"status": "idle"}},
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert r.status == 200

    async def linked() -> Any:
        for span in spans.get_finished_spans():
            if any(f"{link.context.trace_id:032x}" == trace_id for link in span.links) or (
                span.parent is not None and f"{span.context.trace_id:032x}" == trace_id
                and "batch" in span.name
            ):
                return span
        return None

    span = await eventually(linked)
    assert "agents" in str(dict(span.attributes or {})) or "agents" in span.name
