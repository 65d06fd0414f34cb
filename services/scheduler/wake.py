"""Waking an agent for its due slots through the dispatcher's wake paths, with the seed's words.

`nats` and `webhook` go through the dispatcher's `Waker` (core NATS `wake.<agent_id>`, or a JSON
POST); `command` starts `dispatch_command` (placeholders filled, never a shell) and does not wait
for it: the agent answers `WAKEUP_OK` in its session and reports its own status afterwards. Every
wake uses the session `agent:<id>:hf-wakeup` and the fixed message of the seed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.client import Client as NATS

from events.calendar import WAKE_MESSAGE, Due, session_key
from services.dispatcher import policy
from services.dispatcher.wake import WakeFailed, Waker
from services.settings import Settings

log = logging.getLogger(__name__)


def wake_body(agent: str, dues: tuple[Due, ...]) -> dict[str, Any]:
    return {
        "agent_id": agent,
        "task_id": None,
        "session_id": session_key(agent),
        "message": WAKE_MESSAGE,
        "reason": "calendar",
        "slots": [{"id": d.slot.key, "due_at": d.at, "priority": d.slot.priority} for d in dues],
    }


class CalendarWaker:
    def __init__(self, settings: Settings, nc: NATS) -> None:
        # with the dispatcher off, the scheduler still wakes: on NATS, the path that needs no setting
        self.channel = settings.dispatch_mode if settings.dispatch_mode != "off" else "nats"
        self.template = settings.dispatch_command or ""
        self.waker = Waker(self.channel, nc, settings.dispatch_webhook_url, settings.request_timeout_s)
        self.running: set[asyncio.Task[Any]] = set()

    async def wake(self, agent: str, dues: tuple[Due, ...]) -> str:
        """Deliver the wake; the session it continues. WakeFailed names what went wrong."""
        body = wake_body(agent, dues)
        if self.channel != "command":
            await self.waker.wake(body)
            return body["session_id"]
        argv = policy.command_line(self.template, agent_id=agent, task_id="", session_id=body["session_id"],
                                   message=WAKE_MESSAGE)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            raise WakeFailed(f"cannot start the wake command for {agent}: {exc}") from exc
        task = asyncio.ensure_future(proc.wait())
        self.running.add(task)
        task.add_done_callback(self.running.discard)
        return body["session_id"]

    async def close(self) -> None:
        await self.waker.close()
        if self.running:
            await asyncio.wait(list(self.running), timeout=1.0)
