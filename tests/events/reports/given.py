"""Given/when/then for the reports decider: past events folded into a report, a command decided.

`given(...)` folds events one minute apart (stream seq 1, 2, ...) into report R1; `when(cmd)`
decides on that state at `now`; `then(...)` compares the decided events, `then_raises` the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from events.reports import (
    DEFAULT_POLICY,
    Policy,
    Report,
    ReportCommand,
    ReportEvent,
    ReportFiled,
    ReportRuleError,
    decide,
    evolve,
    initial_state,
)

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
R1 = "r01TEST"
FILED = ReportFiled(team="clawteam", worker="backend-a", task_id="example-task", progress="80%",
                    done="export complete", next="wait for aggregation", status="normal",
                    source="checkpoint-complete", targets=["discord", "feishu"])


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


@dataclass
class Given:
    state: Report
    reasons: list[str | None]
    now: datetime
    policy: Policy = DEFAULT_POLICY

    def at(self, now: datetime) -> Given:
        return Given(self.state, self.reasons, now, self.policy)

    def with_policy(self, **kw: float) -> Given:
        return Given(self.state, self.reasons, self.now, Policy(**kw))  # type: ignore[arg-type]

    def when(self, cmd: ReportCommand) -> When:
        return When(self, cmd)


@dataclass
class When:
    given: Given
    cmd: ReportCommand

    def decided(self) -> list[ReportEvent]:
        g = self.given
        return decide(self.cmd, g.state, g.now, g.policy)

    def then(self, *events: ReportEvent) -> None:
        assert self.decided() == list(events)

    def then_raises(self, error: type[ReportRuleError], match: str) -> None:
        with pytest.raises(error, match=match):
            self.decided()


def given(*events: ReportEvent) -> Given:
    state, reasons = initial_state(R1), []
    for i, event in enumerate(events):
        state, reason = evolve(state, event, at(i), seq=i + 1)
        reasons.append(reason)
    return Given(state, reasons, at(len(events)))
