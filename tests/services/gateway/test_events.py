"""The gateway's write path and health against a real nats-server (no projector needed here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from events.core.client import EventClient
from services.gateway.app import create_app
from services.settings import Settings
from tests.services.gateway.admin_auth import ADMIN_TOKEN, AS_ADMIN

Client = TestClient[Any, Any]


@pytest.fixture
async def http(client: EventClient, nats_url: str, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    settings = Settings(admin_token=ADMIN_TOKEN, nats_url=nats_url, projector_name="nobody", max_body_bytes=64 * 1024,
                        max_events_per_request=100, query_timeout_s=0.5)
    return await aiohttp_client(create_app(settings), headers=AS_ADMIN)


async def messages(client: EventClient) -> int:
    return (await client.js.stream_info("AGENTS")).state.messages


async def test_one_event_is_acked_before_200(http: Client, client: EventClient) -> None:
    r = await http.post("/api/events", json={"subject": "agents.architect.heartbeat", "data": {"status": "busy"}})
    assert r.status == 200, await r.text()
    assert await r.json() == {"accepted": 1, "seqs": [1], "after": "AGENTS:1"}
    assert await messages(client) == 1


async def test_an_array_is_published_in_order(http: Client, client: EventClient) -> None:
    body = [{"subject": f"agents.a{i}.heartbeat", "data": {"status": "idle", "round": i}} for i in range(20)]
    r = await http.post("/api/events", json=body)
    assert (await r.json())["seqs"] == list(range(1, 21))
    msg = await client.js.get_msg("AGENTS", 20)
    assert msg.subject == "agents.a19.heartbeat"


async def test_invalid_field_is_422_naming_index_and_path_and_nothing_is_published(http: Client, client: EventClient) -> None:
    body = [
        {"subject": "agents.architect.heartbeat", "data": {"status": "idle"}},
        {"subject": "agents.architect.heartbeat", "data": {"status": 5}},
    ]
    r = await http.post("/api/events", json=body)
    assert r.status == 422
    err = (await r.json())["error"]
    assert err["index"] == 1 and err["field"] == "$[1].data.status"
    assert "status" in err["message"]
    assert await messages(client) == 0


async def test_single_object_error_names_the_field(http: Client) -> None:
    r = await http.post("/api/events", json={"subject": "agents.architect.heartbeat", "data": {"status": 5}})
    assert r.status == 422
    assert (await r.json())["error"]["field"] == "$.data.status"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": "agents.bad id.heartbeat", "data": {"status": "idle"}}, "$.subject"),
        ({"subject": "agents.a.nonsense", "data": {}}, "$.subject"),
        ({"subject": "agents.a.heartbeat"}, "$.data"),
        ({"subject": "agents.a.heartbeat", "data": {"status": "idle", "stauts": 1}}, "$.data.stauts"),
        ({"subject": "agents.a.heartbeat", "data": {"status": "idle"}, "extra": 1}, "$.extra"),
        ({"subject": 7, "data": {}}, "$.subject"),
        ({"subject": "agents.a.heartbeat", "data": {"status": "idle"}, "msg_id": ""}, "$.msg_id"),
    ],
)
async def test_bad_envelopes_name_the_field(http: Client, body: dict[str, Any], field: str) -> None:
    r = await http.post("/api/events", json=body)
    assert r.status == 422, await r.text()
    assert (await r.json())["error"]["field"] == field


async def test_malformed_json_is_400(http: Client) -> None:
    r = await http.post("/api/events", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert (await r.json())["error"]["code"] == "bad_json"


async def test_body_over_the_limit_is_413(http: Client, client: EventClient) -> None:
    note = "x" * 1000
    body = [{"subject": "agents.a.heartbeat", "data": {"status": "idle", "note": note}}] * 90
    r = await http.post("/api/events", json=body)
    assert r.status == 413
    assert await messages(client) == 0


async def test_too_many_events_is_413(http: Client) -> None:
    body = [{"subject": "agents.a.heartbeat", "data": {"status": "idle"}}] * 101
    r = await http.post("/api/events", json=body)
    assert r.status == 413


async def test_msg_id_makes_a_retry_idempotent(http: Client, client: EventClient) -> None:
    body = {"subject": "agents.a.heartbeat", "data": {"status": "idle"}, "msg_id": "retry-1"}
    first = await (await http.post("/api/events", json=body)).json()
    second = await (await http.post("/api/events", json=body)).json()
    assert first["seqs"] == second["seqs"]
    assert await messages(client) == 1


async def test_health_is_503_with_the_reason_when_no_projector_answers(http: Client) -> None:
    r = await http.get("/health")
    assert r.status == 503
    body = await r.json()
    assert body["status"] == "unavailable" and "projector" in body["reason"]


async def test_metrics_parse_as_prometheus_text(http: Client) -> None:
    await http.post("/api/events", json={"subject": "agents.a.heartbeat", "data": {"status": "idle"}})
    r = await http.get("/metrics")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(await r.text())}
    assert "agentledger_http_request_duration_seconds" in families


async def test_every_answer_carries_a_traceparent_continuing_the_callers_trace(http: Client) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = await http.get("/health", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert r.headers["traceparent"].split("-")[1] == trace_id
