"""A calendar backend speaking the seed's API, and the scheduler's connection, on the test's
own NATS account. `backend` is parametrized: the local seed-like server
(tests/services/scheduler/calendar_server.py) and agentledger's own built-in calendar (a
gateway on another NATS account, as another agentledger instance would be)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import nats
import pytest
from aiohttp.test_utils import TestServer

from tests.services.scheduler.calendar_server import CalendarServer
from tests.services.scheduler.harness import OPEN

DEV_SLOT = {"scheduled_at": "09:00", "status": "not_started", "priority": 1, "slot_type": "work",
            "estimated_duration": 30}
OPS_SLOT = {"scheduled_at": "10:00:00", "status": "not_started", "priority": 0}


class CalendarBackend(Protocol):
    async def add(self, agent: str, slot: dict[str, Any]) -> str: ...
    async def update(self, agent: str, slot_id: str, **patch: Any) -> None: ...
    async def remove(self, agent: str, slot_id: str) -> None: ...


@pytest.fixture
def calendar() -> CalendarServer:
    return CalendarServer()


@asynccontextmanager
async def serving(calendar: CalendarServer) -> AsyncIterator[str]:
    server = TestServer(calendar.app())
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def seed_url(calendar: CalendarServer) -> AsyncIterator[str]:
    """The seed-like backend with dev's slot 1 at 09:00 and ops' slot 2 at 10:00."""
    async with serving(calendar) as url:
        await calendar.add("dev", DEV_SLOT)
        await calendar.add("ops", OPS_SLOT)
        yield url


@pytest.fixture(params=["seed", "agentledger"])
async def backend(request: pytest.FixtureRequest, calendar: CalendarServer) -> AsyncIterator[tuple[str, CalendarBackend]]:
    """(its URL, how to change its slots), with dev's slot 1 at 09:00 and ops' slot 2 at 10:00."""
    if request.param == "seed":
        async with serving(calendar) as url:
            await calendar.add("dev", DEV_SLOT)
            await calendar.add("ops", OPS_SLOT)
            yield url, calendar
        return
    from tests.services.scheduler.builtin import builtin_calendar

    async with builtin_calendar(request.getfixturevalue("nats_server"), request.getfixturevalue("tmp_path")) as (url, api):
        await api.add("dev", DEV_SLOT)
        await api.add("ops", OPS_SLOT)
        yield url, api


@pytest.fixture
async def nc(nats_url: str, client: Any) -> AsyncIterator[Any]:
    conn = await nats.connect(nats_url)
    yield conn
    await conn.close()


@pytest.fixture(autouse=True)
async def _closed() -> AsyncIterator[None]:
    yield
    while OPEN:
        await OPEN.pop().close()
