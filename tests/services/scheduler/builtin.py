"""agentledger's built-in calendar as another instance would run it: a gateway on a NATS account
of its own, changed through `POST/PUT/DELETE /api/calendar/slots`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from events.core.client import EventClient
from events.core.streams import ensure_streams
from services.gateway.app import create_app
from services.settings import Settings
from tests.services.gateway.admin_auth import ADMIN_TOKEN, AS_ADMIN
from tests.services.scheduler.calendar_server import DAY


class SlotApi:
    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        async with self.http.request(method, self.url + path, **kw) as resp:
            body = await resp.json()
            assert resp.status < 300, body
            return body  # type: ignore[no-any-return]

    async def add(self, agent: str, slot: dict[str, Any]) -> str:
        body = await self._call("POST", "/api/calendar/slots", json={"agent_id": agent, "date": DAY, **slot})
        return str(body["slot"]["id"])

    async def update(self, agent: str, slot_id: str, **patch: Any) -> None:
        await self._call("PUT", f"/api/calendar/slots/{slot_id}", json=patch)

    async def remove(self, agent: str, slot_id: str) -> None:
        await self._call("DELETE", f"/api/calendar/slots/{slot_id}")


@asynccontextmanager
async def builtin_calendar(nats_server: Any, tmp_path: Path) -> AsyncIterator[tuple[str, SlotApi]]:
    url = nats_server.account_url()
    client = await EventClient.connect(url)
    await ensure_streams(client.js)
    await client.close()
    home = tmp_path / "calendar-instance"
    server = TestServer(create_app(Settings(home=str(home), nats_url=url, admin_token=ADMIN_TOKEN)))
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession(headers=AS_ADMIN) as http:
            yield base, SlotApi(http, base)
    finally:
        await server.close()
