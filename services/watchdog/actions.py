"""What each watchdog decision does beyond being recorded: wakes, and commands to the tasks service.

Commands carry the decision's key as their causation (`Agl-Causation`), so a task's history
names the decision that released or blocked it. An action the tasks service refuses because it
was already done (the task is no longer claimed, the FIX task exists) counts as done: after a
crash between acting and recording, the next pass acts again and is refused, then records.
A decision that names whom to tell (`notify`: the COO and the task's creator on a timeout or a
round pause, the dependency's assignee on a long wait; the seed's 通知) sends each of them a mail
from `watchdog`, whose id is derived from the decision's key and the recipient, so a pass repeated
after a crash sends none twice. Other notices (round warnings, backlog) are the recorded event.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import msgspec
from nats.aio.client import Client as NATS

from events.agents import AgentWoken
from events.core.client import H_CAUSATION, EventClient
from events.core.errors import Conflict, ValidationError
from events.tasks.client import NotFound, TaskClient
from events.watchdog import (
    AnalystWoken,
    Decision,
    DependencyWaited,
    HeartbeatScheduled,
    RoundPaused,
    Stuck,
    Suspected,
    TimedOut,
)
from services.dispatcher.wake import wake_subject

log = logging.getLogger(__name__)
ACTOR = "watchdog"


def kill_subject(agent_id: str) -> str:
    """Core NATS: the dispatcher kills the agent process it owns (`services.dispatcher.kill`)."""
    return f"kill.{wake_subject(agent_id).split('.', 1)[1]}"


class Actions:
    def __init__(self, nc: NATS, events: EventClient, timeout: float) -> None:
        self.nc, self.events = nc, events
        self.tasks = TaskClient(nc, timeout=timeout)

    async def apply(self, d: Decision) -> None:
        ev, agent = d.event, d.agent_id
        match ev:
            case Suspected():
                await self._wake(agent, d.key, ev.task_id, f"watchdog: {ev.cause}; send a heartbeat")
            case TimedOut():
                await self._command("comment", ev.task_id, d.key, author=ACTOR, body=ev.cause)
                if ev.action == "block":
                    await self._command("block", ev.task_id, d.key, reason=f"watchdog: {ev.why} timeout",
                                        by=ACTOR)
                else:
                    await self._command("release", ev.task_id, d.key,
                                        reason=f"watchdog: {ev.why} timeout, step {ev.step}", by=ACTOR)
            case Stuck():
                await self.nc.publish(kill_subject(agent), msgspec.json.encode(
                    {"agent_id": agent, "task_id": ev.task_id, "run_id": ev.run_id, "reason": ev.cause}))
                await self._command("release", ev.task_id, d.key, reason="watchdog: stuck", by=ACTOR)
                await self._command(
                    "create", ev.fix_task_id, d.key, title=f"fix stuck run of {ev.task_id}",
                    type="fix", priority="P0", parent_id=ev.task_id, description=ev.cause, by=ACTOR,
                )
            case RoundPaused():
                await self._command("block", ev.task_id, d.key, reason="max_rounds", by=ACTOR)
            case DependencyWaited():
                pass  # a notice: only the mail below
            case HeartbeatScheduled(outcome="woken"):
                await self._wake(agent, d.key, ev.task_id, f"scheduled heartbeat ({ev.cause})")
            case AnalystWoken():
                await self._wake(ev.analyst, d.key, ev.task_id,
                                 f"root-cause analysis of {ev.task_id}: read runs {', '.join(ev.run_ids)}")
            case _:
                pass  # a notice: the recorded event is the action
        await self._notify(d, getattr(ev, "notify", None) or [])

    async def _notify(self, d: Decision, recipients: list[str]) -> None:
        ev = d.event
        about = f"task {ev.task_id}" if ev.task_id else f"agent {d.agent_id}"
        for to in dict.fromkeys(recipients):
            message_id = "watchdog-" + hashlib.sha256(f"{d.key}\0{to}".encode()).hexdigest()[:40]
            try:
                await self.tasks.send_mail(message_id, from_agent=ACTOR, to=to, performative="inform",
                                           subject=f"watchdog: {ev.name.replace('_', ' ')}, {about}"[:500],
                                           body=ev.cause)
            except (Conflict, NotFound, ValidationError) as exc:  # sent before: Unavailable is retried
                log.info("watchdog %s: mail to %s refused, taken as sent: %s", d.key, to, exc)

    async def _wake(self, agent: str, key: str, task_id: str | None, message: str) -> None:
        body = {"agent_id": agent, "task_id": task_id, "message": message, "reason": key}
        await self.nc.publish(wake_subject(agent), msgspec.json.encode(body))
        await self.events.publish(
            agent, AgentWoken(via="nats", task_id=task_id, reason=message[:2000]),
            msg_id=f"{key}:woken",
        )

    async def _command(self, verb: str, task_id: str | None, key: str, **fields: Any) -> None:
        if task_id is None:
            return
        body = {"task_id": task_id, **fields}
        try:
            await self.tasks.command(verb, body, {H_CAUSATION: key})
        except (Conflict, NotFound, ValidationError) as exc:  # Unavailable: retried next pass
            log.info("watchdog %s: %s %s refused, taken as done: %s", key, verb, task_id, exc)
