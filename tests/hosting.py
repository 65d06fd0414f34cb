"""Running a service's `run(task_status=...)` inside a test, in a task of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

import anyio
import nats


class Runnable(Protocol):
    async def run(self, *, task_status: Any = ...) -> Any: ...


R = TypeVar("R", bound=Runnable)


@asynccontextmanager
async def in_task(run: Callable[..., Awaitable[Any]]) -> AsyncIterator[None]:
    """Run `run(task_status=...)` in a task of its own until the block ends.

    pytest-asyncio sets a fixture up and tears it down in different tasks, and an anyio task
    group must be left by the task that entered it; a failure to start is raised here.
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def owner() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(run)
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
        yield
    finally:
        stop.set()
        await task


@asynccontextmanager
async def running(service: R) -> AsyncIterator[R]:
    """`service.run` in a task of its own (a ProjectorHost, a TasksService, ...)."""
    async with in_task(service.run):
        yield service


async def raw_pub(nats_url: str, subject: str, payload: bytes) -> None:
    """Exactly what `nats pub` sends: the bytes, no headers, no reply subject."""
    nc = await nats.connect(nats_url)
    await nc.publish(subject, payload)
    await nc.flush()
    await nc.close()


async def wait_healthy(proc: asyncio.subprocess.Process, base_url: str) -> None:
    """Until `<base_url>/health` answers 200; fails at once if the process `proc` exits."""
    import aiohttp

    from tests.polling import eventually

    async with aiohttp.ClientSession() as http:

        async def healthy() -> bool:
            if proc.returncode is not None:
                stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
                raise AssertionError(f"exited with {proc.returncode}: {stderr}")
            try:
                async with http.get(f"{base_url}/health") as r:
                    return r.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await eventually(healthy, timeout=90, what=f"GET {base_url}/health answers 200")
@asynccontextmanager
async def gateway_over(
    settings: Any, client: Any, aiohttp_client: Callable[..., Awaitable[Any]], projections: list[str]
) -> AsyncIterator[Any]:
    """A projector hosting `projections` and a gateway's test client in front of it."""
    from services.gateway.app import create_app
    from services.projector.service import ProjectorHost

    async with running(ProjectorHost(settings, client.nc, projections)):
        yield await aiohttp_client(create_app(settings))
