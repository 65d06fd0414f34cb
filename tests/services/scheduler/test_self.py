"""One agentledger as its own calendar: the scheduler syncs from its own gateway on the same
stream. The copy and the original are different events, and a status report forwarded to itself
is not forwarded again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from events.agents import AgentHeartbeat
from events.calendar import SlotStatusReported
from events.core.client import EventClient
from projections.runtime.protocol import QueryClient
from services.gateway.app import create_app
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually
from tests.services.gateway.admin_auth import ADMIN_TOKEN, AS_ADMIN
from tests.services.scheduler.calendar_server import DAY
from tests.services.scheduler.harness import Clock, new, schedules, settings_for


@pytest.fixture
async def own(tmp_path: Path, nats_url: str, client: EventClient) -> AsyncIterator[tuple[Settings, str]]:
    base = Settings(home=str(tmp_path), nats_url=nats_url, batch_ms=20, admin_token=ADMIN_TOKEN)
    server = TestServer(create_app(base))
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    try:
        async with running(ProjectorHost(base, client.nc)):
            yield settings_for(tmp_path, nats_url, url), url
    finally:
        await server.close()


async def test_a_fleet_is_its_own_calendar_and_reports_go_round_once(own: Any, nc: Any, client: EventClient) -> None:
    settings, url = own
    async with aiohttp.ClientSession(headers=AS_ADMIN) as http:
        r = await http.post(f"{url}/api/calendar/slots", json={"agent_id": "dev", "date": DAY, "scheduled_at": "09:00"})
        assert r.status == 201
    await client.publish("dev", AgentHeartbeat(status="idle"))
    queries = QueryClient(nc, settings.projector_name)
    await eventually(lambda: _known(queries), 20, "dev in the agents model")
    clock = Clock()
    s = new(settings, nc, clock)
    assert await s.syncer.step() == "full"
    assert schedules(await s.history.catch_up()) == {"dev": {"1": "not_started"}}
    clock.to(9, 1)
    assert [d.wake for d in await s.check()] == [True]

    await client.publish("dev", SlotStatusReported(status="busy", slot_id="1", slot_status="started"))
    await s.check()  # forwards the agent's report to the backend: itself
    await s.check()  # the backend's record of it (claw set) is not forwarded again
    cal = await s.history.catch_up()
    assert [(r.event.claw, r.seq in cal.forwarded) for r in cal.reports] == [(None, True)]
    assert cal.agent_status["dev"] == "busy" and cal.booked[("dev", "1")].slot.status == "started"
    assert await s.syncer.step() == "diff"
    assert schedules(await s.history.catch_up()) == {"dev": {"1": "started"}}
    assert list(cal.outcomes.values()) == ["woken"]


async def _known(queries: QueryClient) -> bool:
    return bool((await queries.query("agents", "get", id="dev")).rows)
