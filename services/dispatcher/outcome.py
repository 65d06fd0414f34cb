"""After an agent run: classify it, record `attempt_finished`, apply the follow-up.

The task's status at exit comes from its own events on the TASKS stream (not a read model that
may lag), and a failure recorded during the attempt counts as `failed` (`status_at_exit`).
Release and fail are sent only while the agent still holds the task, and `attempt_finished` only
when the task's history does not hold it for this attempt yet, so a repeat changes nothing.
A process killed by the timeout rules ends with its verdict (`timeout_outcome`): a revived
session gives the task back (`session_revived`), a session stuck again fails it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple, cast

from nats.aio.client import Client as NATS

from events import tasks
from events.agents import AgentCooldownStarted
from events.core.client import EventClient
from events.tasks.attempts import (
    Ending,
    TimeoutVerdict,
    classify,
    follow_up,
    status_at_exit,
    timeout_outcome,
)
from services.dispatcher import policy
from services.dispatcher.run import Exit, TaskCommands, task_history

log = logging.getLogger(__name__)


class Settling(NamedTuple):
    nc: NATS
    commands: TaskCommands
    events: EventClient
    clock: Callable[[], datetime]
    cooldown_s: float


async def settle(
    ctx: Settling, agent: str, tid: str, attempt: int, since: int, done: Exit, continuation: int
) -> str:
    """Classify, record `attempt_finished`, apply the follow-up; `continue` when the same
    session goes on, else the outcome."""
    history = await task_history(ctx.nc, tid, since=since)
    state = history.task
    failed = any(isinstance(e, tasks.TaskFailed) for _, e in history.events)
    at_exit = status_at_exit(state.status, failed)
    meta = policy.parse_meta(done.stdout)
    outcome: Ending
    if done.verdict is not None:
        outcome = timeout_outcome(cast(TimeoutVerdict, done.verdict))
    else:
        outcome = classify(done.exit_code or 0, done.stderr, meta.raw, at_exit)
    fu = follow_up(outcome, continuation)
    log.info(
        "dispatch: %s on %s attempt %d: %s (exit %s) -> %s",
        agent,
        tid,
        attempt,
        outcome,
        done.exit_code,
        fu.action,
    )
    recorded = any(
        isinstance(e, tasks.TaskAttemptFinished) and e.attempt == attempt for _, e in history.events
    )
    if not recorded:
        error = done.stderr[-policy.ERROR_CHARS :] or None if outcome != "completed" else None
        await ctx.commands.send(
            "finish_attempt",
            tid,
            msg_id=policy.decision_id("finished", tid, attempt),
            agent_id=agent,
            outcome=outcome,
            exit_code=done.exit_code,
            transport=meta.transport,
            fallback_reason=meta.fallback_reason,
            duration_ms=meta.duration_ms or done.duration_ms,
            task_status_at_exit=at_exit,
            error=error,
        )
    holds = state.status in ("claimed", "working") and state.claimed_by == agent
    if fu.cooldown:
        until = ctx.clock() + timedelta(seconds=ctx.cooldown_s)
        await ctx.events.publish(
            agent,
            AgentCooldownStarted(until=until, reason=outcome, task_id=tid),
            msg_id=policy.decision_id("cooldown", tid, attempt),
        )
    if fu.action == "release" and holds:
        await ctx.commands.send(
            "release",
            tid,
            msg_id=policy.decision_id("release", tid, attempt),
            reason=fu.reason,
            agent_id=agent,
        )
    elif fu.action == "fail" and holds:
        await ctx.commands.send(
            "fail",
            tid,
            msg_id=policy.decision_id("fail", tid, attempt),
            error=fu.reason,
            kind="system",
            agent_id=agent,
        )
    elif fu.action == "continue":
        if holds:
            return "continue"
        log.info("dispatch: %s no longer holds %s (%s): no continuation", agent, tid, state.status)
    return outcome
