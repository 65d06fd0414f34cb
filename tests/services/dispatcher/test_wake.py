"""The wake paths that are not child processes: NATS and webhook, and a wake that cannot be delivered."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.test_utils import TestServer

from events.agents import AgentWoken
from services.dispatcher.loop import Dispatcher
from services.dispatcher.wake import wake_subject
from tests.services.dispatcher.stack import AGENT, Stack, settings_for


@contextlib.asynccontextmanager
async def webhook(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """A local wake endpoint; yields its URL."""
    app = web.Application()
    app.router.add_post("/wake", handler)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/wake"))
    finally:
        await server.close()


async def test_nats_and_webhook_modes_publish_the_wake_and_record_woken(
    stack: Stack, tmp_path: Path, nats_url: str
) -> None:
    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.json_response({"ok": True})

    async with webhook(hook) as url:
        sub = await stack.nc.subscribe(wake_subject(AGENT))
        via_nats = Dispatcher(settings_for(tmp_path, nats_url, dispatch_mode="nats"), stack.nc)
        created = await stack.create("wake-1")
        assert await via_nats.claim(AGENT, "wake-1")
        assert await via_nats.dispatch(AGENT, created["task"]) is None
        wake = msgspec.json.decode((await sub.next_msg(timeout=10)).data)
        assert wake["task_id"] == "wake-1" and "wake-1" in wake["message"]

        hooked = Dispatcher(
            settings_for(
                tmp_path,
                nats_url,
                dispatch_mode="webhook",
                dispatch_webhook_url=url,
            ),
            stack.nc,
        )
        created = await stack.create("wake-2")
        assert await hooked.claim(AGENT, "wake-2")
        await hooked.dispatch(AGENT, created["task"])
        assert [g["task_id"] for g in got] == ["wake-2"]
        await hooked.waker.close()
        woken = [e for e in await stack.agent_events() if isinstance(e, AgentWoken)]
        assert [(w.via, w.task_id) for w in woken] == [("nats", "wake-1"), ("webhook", "wake-2")]
        assert [s.agent_id for s in await stack.started("wake-2")] == [AGENT]


async def test_a_wake_that_cannot_be_delivered_gives_the_task_back(
    stack: Stack, tmp_path: Path, nats_url: str
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async with webhook(refuse) as url:
        d = Dispatcher(
            settings_for(tmp_path, nats_url, dispatch_mode="webhook", dispatch_webhook_url=url),
            stack.nc,
        )
        created = await stack.create("wake-3")
        assert await d.claim(AGENT, "wake-3")
        assert await d.dispatch(AGENT, created["task"]) == "wake_failed"
        await d.waker.close()
        task = (await stack.history("wake-3")).task
        assert task.status == "pending" and (task.status_reason or "").startswith("wake_failed")
        assert not [e for e in await stack.agent_events() if isinstance(e, AgentWoken)]
