"""An attempt as a run log (seed 002's main_logs row): started with the pid, a progress line
from the process output now and then, finished with the outcome.

The progress lines matter beyond reading: the watchdog's stuck rule looks for a heartbeat or a
run log line within `stuck_s`, so an agent that prints while it works is not taken for stuck.
Every event has a msg id derived from the run id, so a repeat after a restart is stored once.
"""

from __future__ import annotations

from events.core.client import EventClient
from events.runs import RunFinished, RunFollowing, RunStarted, cap
from services.dispatcher.run import Exit

FOLLOW_S = 30.0  # at most one progress line per this many seconds


def run_id(task_id: str, attempt: int, continuation: int) -> str:
    return f"{task_id}-a{attempt}-c{continuation}"


class AttemptRun:
    def __init__(self, events: EventClient, run_id: str, agent: str, task_id: str, attempt: int) -> None:
        self.events, self.run_id, self.agent, self.task_id = events, run_id, agent, task_id
        self.attempt = attempt
        self.lines = 0

    async def started(self, pid: int) -> None:
        await self.events.publish(self.run_id, RunStarted(
            agent_id=self.agent, task_id=self.task_id, log_type="attempt", attempt=self.attempt,
            pid=pid,
        ), msg_id=f"dispatch:run:{self.run_id}:started")

    async def line(self, text: str) -> None:
        self.lines += 1
        await self.events.publish(self.run_id, RunFollowing(line=cap(text)),
                                  msg_id=f"dispatch:run:{self.run_id}:line:{self.lines}")

    async def finished(self, outcome: str, done: Exit) -> None:
        await finish(self.events, self.run_id, outcome, done)


async def finish(events: EventClient, run_id: str, outcome: str, done: Exit) -> None:
    ok = outcome in ("completed", "continue")
    await events.publish(run_id, RunFinished(
        status="success" if ok else "failed", duration_ms=max(done.duration_ms, 0),
        level="info" if ok else "error", content=cap(done.stdout + done.stderr),
        message="gateway_timeout" if outcome == "continue" else outcome,
    ), msg_id=f"dispatch:run:{run_id}:finished")
