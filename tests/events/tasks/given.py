"""Given/when/then for the tasks decider: past events folded into a Board, a command decided on it.

`given(...)` folds past events with `evolve` into a `Board` (each one minute after the previous,
stream seq 1, 2, ...): a bare event belongs to the task under test (T1), `("T2", event)` to another
task. `when(cmd)` runs `decide` for T1 (or `.on(id)`) against that board; `then(...)` compares the
decided events the same way, `then_raises(error, match)` the refusal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from events.tasks import (
    Board,
    Emitted,
    Task,
    TaskClaimed,
    TaskCommand,
    TaskCreated,
    TaskEvent,
    TaskFailed,
    TaskRetryScheduled,
    TaskRuleError,
    TaskStarted,
    backoff_s,
    decide,
    evolve,
    initial_state,
)

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
T1 = "TC-FLOW-001"
Step = TaskEvent | tuple[str, TaskEvent]


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def _addressed(step: Step, default: str) -> Emitted:
    return Emitted(*step) if isinstance(step, tuple) else Emitted(default, step)


@dataclass
class Given:
    board: Board
    reasons: list[str | None] = field(default_factory=list)
    now: datetime = T0
    target: str = T1

    @property
    def state(self) -> Task:
        return self.board.get(self.target) or initial_state(self.target)

    def on(self, task_id: str) -> Given:
        return Given(self.board, self.reasons, self.now, task_id)

    def at(self, now: datetime) -> Given:
        return Given(self.board, self.reasons, now, self.target)

    def when(self, cmd: TaskCommand) -> When:
        return When(self, cmd)

    def then_state(self, **expected: object) -> None:
        assert {k: getattr(self.state, k) for k in expected} == expected

    def then_noop(self, reason: str) -> None:
        assert self.reasons[-1] is not None and reason in self.reasons[-1], self.reasons[-1]


@dataclass
class When:
    given: Given
    cmd: TaskCommand

    def decided(self) -> list[Emitted]:
        g = self.given
        return decide(self.cmd, g.state, g.board, g.now)

    def then(self, *events: Step) -> None:
        assert self.decided() == [_addressed(e, self.given.target) for e in events]

    def then_raises(self, error: type[TaskRuleError], match: str) -> None:
        with pytest.raises(error, match=match):
            self.decided()

    def then_apply(self) -> Given:
        """Fold the decided events into the board; every one must apply (no no-op)."""
        g = self.given
        for task_id, event in self.decided():
            state = g.board.get(task_id) or initial_state(task_id)
            state, reason = evolve(state, event, g.now, seq=len(g.reasons) + 1)
            assert reason is None, reason
            g.board.put(state)
            g.reasons.append(reason)
        return g


def given(*steps: Step) -> Given:
    board, reasons = Board(), []
    for i, step in enumerate(steps):
        task_id, event = _addressed(step, T1)
        state, reason = evolve(board.get(task_id) or initial_state(task_id), event, at(i), seq=i + 1)
        board.put(state)
        reasons.append(reason)
    return Given(board, reasons, at(len(steps)))


CREATED = TaskCreated(title="end-to-end flow", project="shop", priority="P1")
CLAIMED = TaskClaimed(agent_id="architect")
STARTED = TaskStarted(agent_id="architect")
WORKING = (CREATED, CLAIMED, STARTED)


def created(task_id: str, **kw: object) -> tuple[str, TaskCreated]:
    return task_id, TaskCreated(title=task_id, **kw)  # type: ignore[arg-type]


def failures(n: int, kind: str = "system") -> list[TaskEvent]:
    """n failures each followed by its retry, the task pending again."""
    out: list[TaskEvent] = []
    for i in range(1, n + 1):
        out += [TaskFailed(error=f"e{i}", kind=kind, failures=i),  # type: ignore[arg-type]
                TaskRetryScheduled(failures=i, delay_s=backoff_s(i), not_before=T0)]
    return out
