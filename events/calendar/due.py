"""Which slots are due, and what to do about each: the scheduler's pure decision.

Rules (seed 004, tested given/when/then in tests/events/calendar/test_due.py):
- a slot is pending while its status is `not_started` or `deferred`; any other status is done;
- `scheduled_at` is `HH:MM` or `HH:MM:SS` on the schedule's date in the calendar's time zone, or
  an ISO date-time (its own offset, else the calendar's zone);
- only the schedule of today (in the calendar's zone) counts: when the date changes, yesterday's
  cached schedule is no longer looked at (the seed clears its cache; a sync brings the new day);
- a pending slot is due once its time has come; it may be woken until its window closes
  (its estimated duration, at least `min_window`), after that it is skipped as missed;
- each (agent, slot, due time) is decided once: those with an outcome are left alone, so a slot
  deferred to a new time is a new decision;
- an agent is woken only when idle and not cooling down; otherwise every due slot of it is
  skipped with the reason; one wake per agent carries all its due slots, highest priority first.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, NamedTuple

from events.calendar.model import PENDING, SkipReason, Slot

_CLOCK = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")
MIN_WINDOW = timedelta(minutes=15)


class Due(NamedTuple):
    agent: str
    slot: Slot
    due_at: datetime

    @property
    def at(self) -> str:
        """The due time as recorded: UTC ISO, part of the outcome's key and msg id."""
        return self.due_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Decision(NamedTuple):
    agent: str
    dues: tuple[Due, ...]
    wake: bool
    reason: SkipReason | None = None
    detail: str = ""


class AgentView(NamedTuple):
    """What the agents read model (and the backend, when it says) know of an agent now."""

    status: str | None
    cooldown_until: datetime | None = None


def resolve(scheduled_at: str, day: str, tz: tzinfo) -> datetime | None:
    """The instant a slot is due, or None when `scheduled_at` is neither form."""
    if m := _CLOCK.match(scheduled_at):
        h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
        if h > 23 or mi > 59 or s > 59:
            return None
        return datetime.combine(date.fromisoformat(day), time(h, mi, s), tz)
    try:
        at = datetime.fromisoformat(scheduled_at)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=tz)


def today(now: datetime, tz: tzinfo) -> str:
    return now.astimezone(tz).date().isoformat()


def due_slots(schedules: Mapping[str, Iterable[Slot]], day: str | None, now: datetime, tz: tzinfo) -> list[Due]:
    """Pending slots whose time has come, per agent in id order, highest priority first."""
    if day is None or day != today(now, tz):
        return []
    out = []
    for agent in sorted(schedules):
        mine = []
        for slot in schedules[agent]:
            if slot.status not in PENDING:
                continue
            at = resolve(slot.scheduled_at, day, tz)
            if at is not None and at <= now:
                mine.append(Due(agent, slot, at))
        out += sorted(mine, key=lambda d: (-d.slot.priority, d.due_at, d.slot.key))
    return out


def window_end(due: Due, min_window: timedelta = MIN_WINDOW) -> datetime:
    return due.due_at + max(timedelta(minutes=due.slot.estimated_duration), min_window)


def decide(
    schedules: Mapping[str, Iterable[Slot]],
    day: str | None,
    now: datetime,
    tz: tzinfo,
    *,
    decided: Collection[tuple[str, str, str]],
    agents: Mapping[str, AgentView],
    min_window: timedelta = MIN_WINDOW,
) -> list[Decision]:
    """What to do now about each due slot without an outcome (`decided` holds those with one)."""
    by_agent: dict[str, list[Due]] = {}
    for d in due_slots(schedules, day, now, tz):
        if (d.agent, d.slot.key, d.at) not in decided:
            by_agent.setdefault(d.agent, []).append(d)
    out: list[Decision] = []
    for agent, dues in by_agent.items():
        missed = tuple(d for d in dues if now >= window_end(d, min_window))
        if missed:
            out.append(Decision(agent, missed, False, "outside_window",
                                f"due {missed[0].at}, window closed before {now.astimezone(UTC):%H:%M:%S}Z"))
        live = tuple(d for d in dues if d not in missed)
        if live:
            out.append(_for_agent(agent, live, agents.get(agent), now))
    return out


def _for_agent(agent: str, dues: tuple[Due, ...], view: AgentView | None, now: datetime) -> Decision:
    if view is None:
        return Decision(agent, dues, False, "unknown_agent", f"agent {agent} never registered nor reported")
    if view.cooldown_until is not None and view.cooldown_until > now:
        return Decision(agent, dues, False, "cooling_down", f"until {view.cooldown_until.isoformat()}")
    if view.status != "idle":
        return Decision(agent, dues, False, "agent_busy", f"agent {agent} is {view.status or 'of unknown status'}")
    return Decision(agent, dues, True)


def agent_views(rows: Iterable[Mapping[str, Any]], backend: Mapping[str, str] | None = None) -> dict[str, AgentView]:
    """Agents read-model rows as views; a status the backend reports wins when it is not idle."""
    out = {}
    for r in rows:
        status = r.get("status")
        if backend and backend.get(r["id"]) not in (None, "idle"):
            status = backend[r["id"]]
        until = r.get("cooldown_until")
        if isinstance(until, str):
            until = datetime.fromisoformat(until)
        out[r["id"]] = AgentView(status, until)
    return out
