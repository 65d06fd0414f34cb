"""The dispatcher's test harness: the fake agent's command line, settings, and a Stack to drive."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS

from events import tasks
from events.core import codec
from events.core.client import EventClient
from events.core.streams import stream_name
from services.dispatcher.loop import Dispatcher
from services.dispatcher.run import History, task_history
from services.settings import Settings

FAKE = Path(__file__).parents[2] / "fixtures" / "fake_agent.py"
NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
AGENT = "coder"


# --- real servers ------------------------------------------------------------------------------


def settings_for(tmp_path: Path, nats_url: str, **more: Any) -> Settings:
    state = tmp_path / "agent-state"
    state.mkdir(exist_ok=True)
    template = (
        f"{sys.executable} {FAKE} --nats {nats_url} --state {state} --agent {{agent_id}} "
        "--task {task_id} --session {session_id} --message {message}"
    )
    values: dict[str, Any] = {
        "home": str(tmp_path),
        "nats_url": nats_url,
        "dispatch_mode": "command",
        "dispatch_command": template,
        "agent_timeout_s": 1.0,
        "max_monitor_timeouts": 2,
        "batch_ms": 20,
        "dispatch_interval_s": 0.1,
        "dispatch_session_file": str(
            state / "agents" / "{agent_id}" / "sessions" / "sessions.json"
        ),
        **more,
    }
    return Settings(**values)


class Stack:
    def __init__(
        self, settings: Settings, nc: NATS, d: Dispatcher, client: EventClient, state: Path
    ) -> None:
        self.settings, self.nc, self.d, self.client, self.state = settings, nc, d, client, state

    async def create(self, task_id: str, **fields: Any) -> dict[str, Any]:
        return await self.d.commands.send("create", task_id, title=f"work on {task_id}", **fields)

    async def run(self, task_id: str) -> str | None:
        """Create the task, claim it for AGENT and dispatch it to the end of its attempts."""
        created = await self.create(task_id, description="described", must_haves="a file")
        assert await self.d.claim(AGENT, task_id)
        return await self.d.dispatch(AGENT, created["task"])

    async def again(self, task_id: str) -> str | None:
        """Claim a task given back earlier and dispatch it once more."""
        assert await self.d.claim(AGENT, task_id)
        return await self.d.dispatch(AGENT, {"id": task_id, "title": f"work on {task_id}"})

    def sessions(self, agent_id: str = AGENT) -> dict[str, Any]:
        path = self.state / "agents" / agent_id / "sessions" / "sessions.json"
        return json.loads(path.read_text())[f"agent:{agent_id}:main"]

    async def history(self, task_id: str) -> History:
        return await task_history(self.nc, task_id)

    async def finished(self, task_id: str) -> list[tasks.TaskAttemptFinished]:
        return [
            e
            for _, e in (await self.history(task_id)).events
            if isinstance(e, tasks.TaskAttemptFinished)
        ]

    async def started(self, task_id: str) -> list[tasks.TaskAttemptStarted]:
        return [
            e
            for _, e in (await self.history(task_id)).events
            if isinstance(e, tasks.TaskAttemptStarted)
        ]

    async def agent_events(self, agent_id: str = AGENT) -> list[Any]:
        js, out, seq = self.nc.jetstream(), [], 1
        while True:
            try:
                raw = await js.get_msg(
                    stream_name("agents"), seq=seq, subject=f"agents.{agent_id}.*", next=True
                )
            except nats.js.errors.NotFoundError:
                return out
            out.append(codec.decode(raw.subject, raw.data))
            seq = raw.seq + 1

    def messages(self, session_id: str) -> list[str]:
        return [
            json.loads(line)
            for line in (self.state / f"{session_id}.messages").read_text().splitlines()
        ]
