"""The poison values of issue 10, replayed: refused at the edge, or listed in `_rejects` when
published raw; `/health` stays healthy and a later good event is applied."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from aiohttp.test_utils import TestClient

from events.core.client import EventClient
from services.gateway.app import create_app
from services.projector.service import ProjectorHost
from services.settings import Settings
from services.tasks.service import TasksService
from tests.hosting import raw_pub, running
from tests.polling import eventually
from tests.services.gateway.admin_auth import ADMIN_TOKEN, AS_ADMIN

Client = TestClient[Any, Any]
BIG = 2**63
RAW = [
    ("agents.a1.heartbeat", b'{"status":"busy","round":9223372036854775808}', "$.round"),
    ("tasks.T1.created", b'{"title":"t","max_rounds":9223372036854775808}', "$.max_rounds"),
    ("usage.b1.completed", b'{"model":"m","prompt_tokens":9223372036854775808}', "$.prompt_tokens"),
]


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    return Settings(admin_token=ADMIN_TOKEN, nats_url=nats_url, home=str(tmp_path), batch_ms=20, snapshot_interval_s=0.5)


@pytest.fixture
async def http(
    client: EventClient, settings: Settings, aiohttp_client: Callable[..., Awaitable[Client]]
) -> AsyncIterator[Client]:
    nc = await nats.connect(nats_url := settings.url)
    assert nats_url
    try:
        async with running(ProjectorHost(settings, client.nc)), running(TasksService(nc)):  # type: ignore[arg-type]
            yield await aiohttp_client(create_app(settings), headers=AS_ADMIN)
    finally:
        await nc.close()


async def test_poison_integers_are_refused_at_the_edge_with_the_field(http: Client) -> None:
    r = await http.post("/api/events", json={"subject": "agents.a1.heartbeat",
                                             "data": {"status": "busy", "round": BIG}})
    assert r.status == 422 and (await r.json())["error"]["field"] == "$.data.round"
    r = await http.post("/api/tasks", json={"task_id": "T1", "title": "t", "max_rounds": BIG})
    body = await r.json()
    assert r.status == 422 and body["error"]["code"] == "validation", body
    assert "max_rounds" in body["error"]["message"]
    r = await http.post("/api/events", json={"subject": "usage.b1.completed",
                                             "data": {"model": "m", "prompt_tokens": BIG}})
    assert 400 <= r.status < 500


async def test_poison_published_raw_is_rejected_and_the_service_stays_healthy(http: Client, nats_url: str) -> None:
    for subject, payload, _ in RAW:
        await raw_pub(nats_url, subject, payload)
    await raw_pub(nats_url, "agents.a2.heartbeat", b'{"status":"idle","round":4}')

    async def rejected() -> list[dict[str, Any]]:
        r = await http.get("/api/rejects")
        rows = (await r.json())["rejects"]
        return rows if len(rows) == 3 else []

    rows = await eventually(rejected, timeout=10)
    assert sorted((r["subject"], r["error"].rsplit(" at ", 1)[-1]) for r in rows) == sorted(
        (s, f) for s, _, f in RAW
    )

    async def applied() -> bool:
        r = await http.get("/api/agents/a2")
        return r.status == 200 and (await r.json())["round"] == 4

    await eventually(applied, timeout=10, what="the good heartbeat after the poison")
    r = await http.get("/health")
    assert r.status == 200, await r.text()
