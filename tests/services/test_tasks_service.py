"""The tasks command service against a real nats-server: claims that cannot race, atomic fixes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import nats
import pytest

from events.client import EventClient
from events.streams import stream_name
from events.tasks import TaskCommented
from services.tasks import TasksService

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def service(url: str) -> AsyncIterator[TasksService]:
    """One replica on a connection of its own, run in a task of its own."""
    nc = await nats.connect(url)
    svc = TasksService(nc)
    started = asyncio.Event()

    async def owner() -> None:
        import anyio

        async with anyio.create_task_group() as tg:
            await tg.start(svc.run)
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(owner())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    try:
        yield svc
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await nc.close()


async def req(nc: Any, verb: str, body: dict[str, Any]) -> dict[str, Any]:
    msg = await nc.request(f"cmd.tasks.{verb}", msgspec.json.encode(body), timeout=10)
    return msgspec.json.decode(msg.data)


async def test_create_claim_start_reply_with_events_and_state(client: EventClient, nats_url: str) -> None:
    async with service(nats_url):
        created = await req(client.nc, "create", {"task_id": "TC-FLOW-001", "title": "flow"})
        assert created["ok"], created
        assert created["events"][0]["subject"] == "tasks.TC-FLOW-001.created"
        assert created["task"]["status"] == "pending"
        claimed = await req(client.nc, "claim", {"task_id": "TC-FLOW-001", "agent_id": "architect"})
        assert claimed["ok"] and claimed["task"]["claimed_by"] == "architect", claimed
        again = await req(client.nc, "claim", {"task_id": "TC-FLOW-001", "agent_id": "coo"})
        assert again == {"ok": False, "error": {"code": "conflict", "message": "task TC-FLOW-001 is claimed by architect"}}
        same = await req(client.nc, "claim", {"task_id": "TC-FLOW-001", "agent_id": "architect"})
        assert same["ok"] and same["events"] == [] and same["seq"] == claimed["seq"]
