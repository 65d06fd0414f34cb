"""Given/when/then for the watchdog: timed facts folded into a Fleet, a pass of `decide` at a time.

`given((minute, "tasks.T1", event), ...)` folds each event at T0 + minute; `.when(minute)` runs
`decide` then; `.then(...)` compares the decisions as (event name, key) pairs, and `.taken()`
folds them back, as the service does once they are acked, for the next pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from events.core.registry import Event
from events.watchdog import DEFAULTS, Decision, Fleet, Policy, decide

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
POLICY = Policy(classes=DEFAULTS, coo="coo", analyst="analyst", cron=False)  # cron: test_schedule


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


@dataclass
class Given:
    fleet: Fleet
    policy: Policy = POLICY
    seq: int = 0
    decisions: list[Decision] | None = None

    def also(self, *steps: tuple[float, str, Event]) -> Given:
        for minute, where, event in steps:
            domain, aggregate = where.split(".")
            self.seq += 1
            self.fleet.apply(domain, aggregate, event, at(minute), self.seq)
        return self

    def when(self, minute: float) -> Given:
        self.decisions = decide(self.fleet, at(minute), self.policy)
        return self

    def then(self, *expected: tuple[str, str]) -> Given:
        assert self.decisions is not None, "call when() first"
        got = [(d.event.name, d.key) for d in self.decisions]
        assert got == list(expected), got
        return self

    @property
    def events(self) -> list[Event]:
        assert self.decisions is not None
        return [d.event for d in self.decisions]

    def taken(self, minute: float) -> Given:
        """The decisions of the last pass acked and folded back, as the service does."""
        assert self.decisions is not None
        for d in self.decisions:
            self.also((minute, f"watchdog.{d.agent_id}", d.event))
        return self


def given(*steps: tuple[float, str, Event], policy: Policy = POLICY) -> Given:
    return Given(Fleet(), policy).also(*steps)
