"""The watchdog's kill requests (core NATS `kill.<agent_id>`) for agent processes the dispatcher runs.

The watchdog decides that a run is stuck (seed 002: no heartbeat and no log line for the stuck
timeout) but does not own the process; the dispatcher does, so it listens and kills the agent's
process group. The watched attempt then ends like any killed run and is settled as usual.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.runtime.pids import alive

log = logging.getLogger(__name__)
SUBJECT = "kill.*"


class Processes:
    """Agent id -> the pids of the attempts the dispatcher started (or recovered) for it."""

    def __init__(self) -> None:
        self.pids: dict[str, set[int]] = {}

    def add(self, agent: str, pid: int) -> None:
        self.pids.setdefault(agent, set()).add(pid)

    def kill(self, agent: str) -> list[int]:
        killed = [pid for pid in self.pids.pop(agent, set()) if alive(pid)]
        for pid in killed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        return killed


async def listen(nc: NATS, processes: Processes) -> Subscription:
    async def on_kill(msg: Msg) -> None:
        agent = msg.subject.split(".", 1)[1]
        killed = processes.kill(agent)
        log.warning("dispatch: kill requested for %s (%s): %s", agent, msg.data[:500].decode(errors="replace"),
                    f"killed pid(s) {killed}" if killed else "no process of ours")

    return await nc.subscribe(SUBJECT, cb=on_kill)
