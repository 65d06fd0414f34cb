"""`agentledger serve gateway --workers N`: N gateway processes on one port, so the proxy can use
every core (one Python process tops out at one).

Worker 1 runs in this process; workers 2..N are `agentledger serve gateway --workers 1
--reuse-port` children with the same settings, supervised like `up`'s (restarted with backoff,
stopped on SIGTERM). Every worker binds the port with SO_REUSEPORT and the kernel spreads new
connections over them. Nothing needs sharing between them that the streams do not already carry:
cooldowns and usage go through PROVIDERS and USAGE; RPM buckets are per worker (split a backend's
limit by the workers of all gateways). A worker binds with SO_REUSEPORT only when there are
several, so a single gateway still fails on a port someone else holds.
"""

from __future__ import annotations

from functools import partial

import anyio
import anyio.abc

from services.gateway.app import serve
from services.runtime import children
from services.settings import Settings


def worker_argv() -> list[str]:
    return [*children.serve_argv("gateway"), "--workers", "1", "--reuse-port"]


async def serve_workers(
    settings: Settings, workers: int, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    env = children.child_env(settings)
    kids = [children.Child(f"gateway-{i}", worker_argv(), env) for i in range(2, workers + 1)]
    async with anyio.create_task_group() as tg:
        await tg.start(partial(serve, settings, reuse_port=True))
        await tg.start(children.run_all, kids, lambda: None)
        task_status.started()
