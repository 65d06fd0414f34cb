"""Given a schedule (agent -> slots) of a day, when the scheduler looks at `now`, then these
decisions: the pure due-slot rule with no server."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from events.calendar import AgentView, Decision, Slot, decide

DAY = "2026-12-01"
IDLE = AgentView("idle")


def slot(at: str, key: int = 1, **kw: object) -> Slot:
    return Slot(id=key, scheduled_at=at, **kw)  # type: ignore[arg-type]


@dataclass
class Given:
    schedules: dict[str, list[Slot]]
    day: str = DAY
    tz: tzinfo = UTC
    agents: dict[str, AgentView] = field(default_factory=dict)
    decided: set[tuple[str, str, str]] = field(default_factory=set)

    def in_zone(self, tz: tzinfo) -> Given:
        self.tz = tz
        return self

    def with_agents(self, **views: AgentView) -> Given:
        self.agents.update(views)
        return self

    def with_outcome(self, agent: str, key: str, at: str) -> Given:
        self.decided.add((agent, key, at))
        return self

    def at(self, now: datetime) -> list[Decision]:
        return decide(self.schedules, self.day, now, self.tz, decided=self.decided, agents=self.agents)

    def woken_at(self, now: datetime) -> list[tuple[str, list[str]]]:
        return [(d.agent, [x.slot.key for x in d.dues]) for d in self.at(now) if d.wake]

    def skipped_at(self, now: datetime) -> list[tuple[str, list[str], str | None]]:
        return [(d.agent, [x.slot.key for x in d.dues], d.reason) for d in self.at(now) if not d.wake]


def given(**schedules: list[Slot]) -> Given:
    return Given(schedules)


def utc(h: int, m: int = 0, s: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 12, day, h, m, s, tzinfo=UTC)


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
