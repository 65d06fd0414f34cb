"""Scheduled heartbeat wakes (BIZ-25): each class's cron expression, in the configured time zone.

One decision per agent and due time: the newest due time at or before `now`, so a watchdog that
was down over several slots wakes once, not once per missed slot. Only registered agents are
scheduled, and only for due times after their registration. "A heartbeat never interrupts a
conversation": a busy agent is skipped, as is one cooling down after a 429 or offline or
exhausted; the skip is recorded with its reason like a wake.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from events.agents import Agent
from events.watchdog.classes import ClassRules
from events.watchdog.model import HeartbeatScheduled


def last_due(expr: str, now: datetime, tz: str) -> datetime:
    """The newest time the cron expression fired at or before `now`, read in zone `tz`."""
    # get_prev is strictly before its start; cron has minute resolution, so a second later
    # includes a time that is due exactly now
    start = now.astimezone(ZoneInfo(tz)) + timedelta(seconds=1)
    due: datetime = croniter(expr, start).get_prev(datetime)
    return due


def skip_reason(agent: Agent, now: datetime) -> str | None:
    if agent.cooldown_until is not None and agent.cooldown_until > now:
        return f"cooling down until {agent.cooldown_until.isoformat()}"
    if agent.status == "busy":
        return "busy in a conversation"
    if agent.status in ("offline", "exhausted"):
        return f"agent is {agent.status}"
    return None


def scheduled(agent: Agent, rules: ClassRules, now: datetime, tz: str) -> HeartbeatScheduled | None:
    if not agent.registered or agent.registered_at is None:
        return None
    due = last_due(rules.heartbeat_cron, now, tz)
    if due <= agent.registered_at:
        return None
    reason = skip_reason(agent, now)
    return HeartbeatScheduled(
        key=f"watchdog:heartbeat:{agent.id}:{int(due.timestamp())}", due_at=due,
        outcome="woken" if reason is None else "skipped", task_id=agent.current_task,
        cause=reason or f"scheduled heartbeat {rules.heartbeat_cron} ({tz}) due {due.isoformat()}",
    )
