"""Waking runtimes that are not the dispatcher's child processes: a NATS signal or a webhook.

The wake is a signal, not a record: it goes to core NATS `wake.<agent_id>` (no stream captures
`wake.>`), and the dispatcher records the `agents.<id>.woken` event beside it.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
from nats.aio.client import Client as NATS

from events.core.subjects import check_id


class WakeFailed(Exception):
    """The wake could not be delivered; the message names the agent and the target."""


def wake_subject(agent_id: str) -> str:
    return f"wake.{check_id(agent_id, 'agent_id')}"


class Waker:
    def __init__(self, mode: str, nc: NATS, webhook_url: str | None, timeout: float) -> None:
        self.mode, self.nc, self.url, self.timeout = mode, nc, webhook_url, timeout
        self.http: aiohttp.ClientSession | None = None

    async def wake(self, body: dict[str, Any]) -> None:
        agent = body["agent_id"]
        if self.mode == "nats":
            await self.nc.publish(wake_subject(agent), msgspec.json.encode(body))
            return
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self.http.post(self.url or "", json=body) as resp:
                if resp.status >= 300:
                    raise WakeFailed(f"wake webhook {self.url} answered {resp.status} for {agent}")
        except aiohttp.ClientError as exc:
            raise WakeFailed(f"wake webhook {self.url} for {agent}: {exc}") from exc

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
