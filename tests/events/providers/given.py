"""Given/when/then for the providers decider: events at seconds after T0, a command decided at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from events.providers import (
    Backend,
    BackendCreated,
    CooldownStarted,
    ModelMapping,
    ObserveRateLimit,
    ProviderCommand,
    ProviderEvent,
    ProviderRuleError,
    RateLimited,
    decide,
    evolve,
    initial_state,
)

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
BACKEND = "bkd_nvidia1"
TOKEN = "k1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAAAAAA"
TOKEN2 = "k2:BBBBBBBBBBBBBBBB:BBBBBBBBBBBBBBBBBBBBBBBBBB"
CREATED = BackendCreated(
    backend_name="nvidia 1",
    api_base_url="https://integrate.api.nvidia.com/v1",
    api_key=TOKEN,
    rpm_limit=40,
    model_mappings={"glm-4.7": ModelMapping(native_id="z-ai/glm4.7")},
)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class Given:
    state: Backend
    reasons: list[str | None] = field(default_factory=list)
    now: datetime = T0

    def at(self, seconds: float) -> Given:
        return Given(self.state, self.reasons, s(seconds))

    def when(self, cmd: ProviderCommand) -> When:
        return When(self, cmd)

    def then_state(self, **expected: object) -> None:
        assert {k: getattr(self.state, k) for k in expected} == expected

    def then_noop(self, reason: str) -> None:
        assert self.reasons[-1] is not None and reason in self.reasons[-1]


@dataclass
class When:
    given: Given
    cmd: ProviderCommand

    def decided(self) -> list[ProviderEvent]:
        return decide(self.cmd, self.given.state, self.given.now)

    def then(self, *events: ProviderEvent) -> None:
        assert self.decided() == list(events)

    def then_raises(self, error: type[ProviderRuleError], match: str) -> None:
        with pytest.raises(error, match=match):
            self.decided()

    def then_cooldown(self, length_s: float, reason: str, consecutive: int) -> None:
        events = self.decided()
        assert [type(e) for e in events] == [RateLimited, CooldownStarted]
        started = events[1]
        assert isinstance(started, CooldownStarted)
        assert (started.length_s, started.reason, started.consecutive) == (
            length_s,
            reason,
            consecutive,
        )
        assert started.until == self.given.now + timedelta(seconds=length_s)

    def then_no_cooldown(self) -> None:
        assert [type(e) for e in self.decided()] == [RateLimited]


def given(*timed: tuple[float, ProviderEvent] | ProviderEvent) -> Given:
    """Events at 0 s unless given as (seconds, event); `now` is the last event's time."""
    state, reasons, now = initial_state(BACKEND), [], T0
    for item in timed:
        seconds, event = item if isinstance(item, tuple) else (0.0, item)
        now = s(seconds)
        state, reason = evolve(state, event, now)
        reasons.append(reason)
    return Given(state, reasons, now)


def run(g: Given, cmd: ProviderCommand, at: float) -> Given:
    """Decide at `at` seconds and fold what was decided: one step of a replica's life."""
    state, now, reasons = g.state, s(at), list(g.reasons)
    for event in decide(cmd, state, now):
        state, reason = evolve(state, event, now)
        reasons.append(reason)
    return Given(state, reasons, now)


HTTP_429 = ObserveRateLimit(headers={})
