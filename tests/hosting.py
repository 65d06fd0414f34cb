"""Running a service's `run(task_status=...)` inside a test, in a task of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from services.projector import ProjectorHost


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
