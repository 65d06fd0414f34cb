"""A projector host on the test's own NATS account and temp folder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import nats
import pytest
from nats.aio.client import Client as NATS

from events.client import EventClient
from projections.protocol import QueryClient
from services.projector import ProjectorHost
from services.settings import Settings


@pytest.fixture
def settings(tmp_path: Path, nats_url: str) -> Settings:
    return Settings(home=str(tmp_path), nats_url=nats_url, batch_ms=20, snapshot_interval_s=0.3)


@pytest.fixture
async def host_nc(settings: Settings, client: EventClient) -> AsyncIterator[NATS]:
    """The projector's own connection (streams already created by `client`)."""
    nc = await nats.connect(settings.url)
    yield nc
    await nc.close()


@asynccontextmanager
async def running(h: ProjectorHost) -> AsyncIterator[ProjectorHost]:
    """Run the host in a task of its own: pytest-asyncio sets a fixture up and tears it down in
    different tasks, and an anyio task group must be left by the task that entered it."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def owner() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(h.run)
            started.set()
            await stop.wait()
            tg.cancel_scope.cancel()

    task = asyncio.create_task(owner())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        yield h
    finally:
        stop.set()
        await task


@pytest.fixture
async def host(settings: Settings, host_nc: NATS) -> AsyncIterator[ProjectorHost]:
    async with running(ProjectorHost(settings, host_nc)) as h:
        yield h


@pytest.fixture
def queries(client: EventClient, settings: Settings) -> QueryClient:
    return QueryClient(client.nc, settings.projector_name)
