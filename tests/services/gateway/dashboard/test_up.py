"""The dashboard of a real `agentledger up` (embedded nats-server with credentials, projector,
tasks service, gateway): what an operator opens first, with nothing configured."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import anyio

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from services import up
from services.runtime import credentials
from services.runtime.natsd import free_port
from services.settings import load
from tests.polling import eventually
from tests.services.gateway.dashboard.browser import opened

WAIT_MS = 15_000
DESKTOP = {"width": 1280, "height": 800}


async def test_a_heartbeat_reaches_the_fleet_page_of_agentledger_up_without_a_reload(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load(env={}, home=str(home), http_port=free_port(), nats_port=0)
    async with anyio.create_task_group() as tg:
        running: up.Running = await tg.start(lambda task_status: up.run(settings, task_status=task_status))
        async with aiohttp.ClientSession() as http:

            async def healthy() -> bool:
                async with http.get(f"{running.http_url}/health") as r:
                    return r.status == 200

            await eventually(healthy, what="GET /health answers 200")
        async with opened(running.http_url, "/dashboard", DESKTOP) as page:
            await page.wait_for_selector("#link[data-state=live]", timeout=WAIT_MS)
            assert page.url.endswith("/dashboard/fleet")
            await page.evaluate("window.__sameDocument = true")
            admin = credentials.load(home, "admin")
            async with await EventClient.connect(credentials.with_user(running.nats_url, admin)) as client:
                await client.publish("architect", AgentHeartbeat(status="busy", current_task="TC-FLOW-001"))
            row = await page.wait_for_selector("tr[data-id=architect]", timeout=WAIT_MS)
            assert "TC-FLOW-001" in await row.inner_text()
            assert await page.evaluate("window.__sameDocument") is True
        tg.cancel_scope.cancel()
