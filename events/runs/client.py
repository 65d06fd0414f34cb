"""The seed's run-log helper on the event client: `get_logger(client, agent).set_task(...)...`.

Seed 002 wrote `main_logs` rows with `get_logger('task').set_task(name).set_content(text)
.finish('success')`; the same chain writes `runs.<run_id>.started|following|finished` here.
`finish("running")` starts the run and `finish("following")` adds a progress line, as in the
seed; `success|failed|skipped` finish it with its duration. Every write is acked by JetStream
before the call returns, and carries a msg id derived from the run id, so a retried call is
stored once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Self

from events.core.client import EventClient
from events.runs.model import Level, RunFinished, RunFollowing, RunStarted, cap


class RunLogger:
    def __init__(
        self, client: EventClient, agent_id: str, log_type: str = "task", *,
        run_id: str | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.agent_id, self.log_type = client, agent_id, log_type
        self.run_id = run_id or f"run-{uuid.uuid4().hex[:16]}"
        self.task_id: str | None = None
        self.content = ""
        self.message = ""
        self.clock = clock
        self.started_at: float | None = None
        self.lines = 0

    def set_task(self, task_id: str) -> Self:
        self.task_id = task_id
        return self

    def set_content(self, text: str) -> Self:
        """Add to the run's log text (capped as the seed caps it: the newest 80,000 of 100,000)."""
        self.content = cap(self.content + text)
        return self

    def set_message(self, text: str) -> Self:
        self.message = text[:2000]
        return self

    async def start(self) -> int:
        self.started_at = self.clock()
        return await self.client.publish(
            self.run_id,
            RunStarted(agent_id=self.agent_id, task_id=self.task_id, log_type=self.log_type),
            msg_id=f"run:{self.run_id}:started",
        )

    async def line(self, text: str) -> int:
        """A progress line while the run is alive (seed: `log_line`, `following`)."""
        if self.started_at is None:
            await self.start()
        self.lines += 1
        self.set_content(text + "\n")
        return await self.client.publish(
            self.run_id, RunFollowing(line=cap(text)), msg_id=f"run:{self.run_id}:line:{self.lines}"
        )

    async def finish(self, status: str, level: Level | None = None) -> int:
        if status == "running":
            return await self.start()
        if status == "following":
            return await self.line(self.message or "running")
        if self.started_at is None:
            await self.start()
        assert self.started_at is not None
        duration = int((self.clock() - self.started_at) * 1000)
        return await self.client.publish(
            self.run_id,
            RunFinished(
                status=status,  # type: ignore[arg-type]  # validated by the codec on publish
                duration_ms=max(duration, 0), level=level or ("error" if status == "failed" else "info"),
                content=self.content, message=self.message,
            ),
            msg_id=f"run:{self.run_id}:finished",
        )


def get_logger(client: EventClient, agent_id: str, log_type: str = "task", **kwargs: object) -> RunLogger:
    return RunLogger(client, agent_id, log_type, **kwargs)  # type: ignore[arg-type]
