"""A restarted dispatcher finds the attempts it started and never finished, and settles each.

The attempts in flight are rebuilt from the RUNS stream, not from memory: every attempt the
dispatcher runs is a run whose `started` names the task, the attempt and the process id, and
whose `finished` comes after `attempt_finished`. A run started and not finished is in flight:

- its `attempt_finished` is already on the task (killed between the two): only the run is closed;
- its process is alive: the dispatcher waits for it again (polling, since it is no longer its
  child) until it exits, or kills it at the attempt's deadline (`agent_timeout_s` x
  `max_monitor_timeouts` from its start) as `max_monitor_timeouts`;
- its process is gone: the exit code is lost with the old dispatcher, so the task's own events
  decide: a task the agent submitted (review or done) completed; otherwise, when the agent's
  session file shows the session still running on a dead lock, it is revived (set idle) and the
  attempt ends `session_revived` (task given back), else as an `agent_error` (the task is failed
  as a system error, so it is retried with backoff).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import anyio
from nats.aio.client import Client as NATS

from events.core import codec
from events.core.errors import EventError
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from events.runs import RunFinished, RunStarted
from services.dispatcher import session as session_file
from services.dispatcher.run import Exit
from services.runtime.pids import alive

POLL_S = 0.2
GONE = "the agent process ended while the dispatcher was down (exit code unknown)"


class OpenRun(NamedTuple):
    run_id: str
    agent_id: str
    task_id: str
    attempt: int
    pid: int
    started_at: datetime


async def open_runs(nc: NATS) -> list[OpenRun]:
    """Attempt runs started and not finished, oldest first, folded from RUNS up to its end now."""
    js = nc.jetstream()
    last = int((await js.stream_info(stream_name("runs"))).state.last_seq)
    found: dict[str, OpenRun] = {}
    if last == 0:
        return []
    sub = await js.subscribe(domain_filter("runs"), ordered_consumer=True)
    try:
        async for msg in sub.messages:
            run_id = msg.subject.split(".")[1]
            try:
                event = codec.decode(msg.subject, msg.data)
            except EventError:
                event = None
            if isinstance(event, RunStarted) and event.pid and event.task_id and event.attempt:
                found[run_id] = OpenRun(run_id, event.agent_id, event.task_id, event.attempt,
                                        event.pid, msg.metadata.timestamp)
            elif isinstance(event, RunFinished):
                found.pop(run_id, None)
            if msg.metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return list(found.values())


async def wait_for(run: OpenRun, deadline_s: float, now: datetime) -> str | None:
    """Wait until the process is gone (None) or the deadline passed: then kill it, return the verdict."""
    left = deadline_s - (now - run.started_at).total_seconds()
    end = time.monotonic() + max(left, 0.0)
    while alive(run.pid):
        if time.monotonic() >= end:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(run.pid, signal.SIGKILL)
            return "max_monitor_timeouts"
        await anyio.sleep(POLL_S)
    return None


async def session_verdict(path: Path | None, agent: str) -> str | None:
    """A process gone without its task done, whose session the runtime still shows `running` on
    a dead lock, left a stuck session: set it idle (`revive`) so the next wake is taken."""
    if path is None:
        return None
    state = await anyio.to_thread.run_sync(session_file.read_state, path, agent)
    if not state.stuck:
        return None
    await anyio.to_thread.run_sync(session_file.revive, path, agent)
    return "revive"


def exit_after_restart(verdict: str | None, task_status: str, duration_ms: int) -> Exit:
    """The Exit the classifier sees for a process the dispatcher did not see end."""
    if verdict is not None:
        return Exit(None, "", GONE, duration_ms, verdict, 0)
    code = 0 if task_status in ("review", "done") else 1
    return Exit(code, "", "" if code == 0 else GONE, duration_ms, None, 0)



