"""`/dashboard/sse`: page data pushed as the projections apply events, resumable, read-guarded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from aiohttp.test_utils import TestClient

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from services.gateway.app import create_app
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import raw_pub, running
from tests.polling import eventually
from tests.services.gateway.admin_auth import ADMIN_TOKEN, AS_ADMIN
from tests.services.gateway.dashboard.sse_client import next_data

Client = TestClient[Any, Any]
BOUND_S = 15.0


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(admin_token=ADMIN_TOKEN, nats_url=nats_url, home=str(tmp_path), batch_ms=20, snapshot_interval_s=0.2)


@pytest.fixture
async def projector(client: EventClient, settings: Settings) -> AsyncIterator[ProjectorHost]:
    async with running(ProjectorHost(settings, client.nc, ["agents"])) as host:
        yield host


@pytest.fixture
async def http(projector: ProjectorHost, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    return await aiohttp_client(create_app(settings))


def ids(view: dict[str, Any]) -> list[str]:
    return [a["id"] for a in view["agents"]]


async def test_a_heartbeat_is_pushed_to_the_fleet_stream_once_the_projection_applied_it(
    http: Client, client: EventClient
) -> None:
    with anyio.fail_after(BOUND_S):
        resp = await http.get("/dashboard/sse?page=fleet")
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        first, _ = await next_data(resp)
        assert first["page"] == "fleet" and ids(first["view"]) == []
        await client.publish("architect", AgentHeartbeat(status="busy", current_task="TC-1", round=3))
        data, _ = await next_data(resp)
        (agent,) = data["view"]["agents"]
        assert agent["id"] == "architect" and agent["status"] == "busy" and agent["current_task"] == "TC-1"
        assert data["view"]["classes"]["dev"]["heartbeat_interval_s"] == 900
        resp.close()


async def test_a_reconnect_with_the_current_last_event_id_is_sent_only_what_changed_after_it(
    http: Client, client: EventClient
) -> None:
    seq = await client.publish("coo", AgentHeartbeat(status="idle"))

    async def applied() -> bool:
        body = await (await http.get("/health")).json()
        return body["projections"].get("agents", {}).get("checkpoints", {}).get("AGENTS") == seq

    await eventually(applied, timeout=BOUND_S)
    with anyio.fail_after(BOUND_S):
        resp = await http.get("/dashboard/sse?page=fleet")
        data, seen = await next_data(resp)
        resp.close()
        assert ids(data["view"]) == ["coo"]
        again = await http.get("/dashboard/sse?page=fleet", headers={"Last-Event-ID": seen or ""})
        await client.publish("architect", AgentHeartbeat(status="busy"))
        data, after = await next_data(again)
        assert ids(data["view"]) == ["architect", "coo"], "the first event after resuming is the change, not a resend"
        assert after != seen
        again.close()


async def test_the_ledger_stream_lists_a_rejected_raw_event_with_its_reason(http: Client, nats_url: str) -> None:
    await raw_pub(nats_url, "agents.architect.heartbeat", b'{"status": 5}')
    with anyio.fail_after(BOUND_S):
        resp = await http.get("/dashboard/sse?page=ledger")
        while True:
            data, _ = await next_data(resp)
            if data["view"]["rejects"] and data["view"]["projections"]["agents"]["snapshot_at"]:
                break
        (reject,) = data["view"]["rejects"]
        assert reject["subject"] == "agents.architect.heartbeat" and "$.status" in reject["error"]
        assert {"AGENTS", "TASKS"} <= {s["name"] for s in data["view"]["streams"]}
        assert data["view"]["projections"]["agents"]["rejects"] == 1
        resp.close()


async def test_an_unknown_page_is_refused_naming_the_field(http: Client) -> None:
    r = await http.get("/dashboard/sse?page=nope")
    assert r.status == 422 and (await r.json())["error"]["field"] == "page"


async def test_with_read_auth_token_the_stream_needs_a_token(
    projector: ProjectorHost, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    guarded = await aiohttp_client(create_app(msgspec.structs.replace(settings, read_auth="token")))
    r = await guarded.get("/dashboard/sse?page=fleet")
    assert r.status == 401
    r = await guarded.get("/dashboard/sse?page=fleet", headers={"Authorization": "Bearer wrong"})
    assert r.status == 401
    with anyio.fail_after(BOUND_S):
        r = await guarded.get("/dashboard/sse?page=fleet", headers=AS_ADMIN)
        assert r.status == 200
        data, _ = await next_data(r)
        assert data["page"] == "fleet"
        r.close()
