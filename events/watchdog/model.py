"""The watchdog's decisions: one event per decision, on `watchdog.<agent_id>.<decision>`.

Every decision carries its `cause` in words with the numbers that triggered it, the task it acts
on, and `key`: the deterministic id it is published under (`Nats-Msg-Id`) and by which the
watchdog's own fold knows it was taken, so a restarted watchdog repeats no step.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from events.core.bounds import INT32_MAX, Instant
from events.core.policy import Writers, writers
from events.core.registry import Event

Text = Annotated[str, msgspec.Meta(max_length=2000)]
Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=400)]
Count = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX)]
Action = Literal["release", "block"]
Why = Literal["silence", "stagnation"]


class WatchdogEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "watchdog"
    writers: ClassVar[Writers] = writers("watchdog", "admin")
    written_by: ClassVar[str] = "the watchdog service (or an operator)"
    key: Key
    cause: Text
    task_id: Id | None = None


class Suspected(WatchdogEvent, frozen=True, kw_only=True):
    """Silent (or its task unmoved) past the stall warning while holding a task: one extra
    heartbeat wake, as the seed's "追加一次完整心跳"."""

    name: ClassVar[str] = "suspected"
    silent_s: Count  # seconds without a sign of life (silence) or without a move (stagnation)
    why: Why = "silence"


class TimedOut(WatchdogEvent, frozen=True, kw_only=True):
    """One step of the recovery ladder: 1 release, 2 release + COO, 3 block + owner."""

    name: ClassVar[str] = "timed_out"
    why: Why
    step: Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]
    action: Action
    notify: Annotated[list[Id], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)


class Stuck(WatchdogEvent, frozen=True, kw_only=True):
    """Seed 002: an open run without a log line for the stuck timeout; kill, release, FIX task."""

    name: ClassVar[str] = "stuck"
    run_id: Id | None = None
    fix_task_id: Id
    silent_s: Count


class DependencyWaited(WatchdogEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "dependency_waited"
    dependency: Id
    dependency_status: Text
    notify: Annotated[list[Id], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)


class RoundWarned(WatchdogEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "round_warned"
    round: Count
    max_rounds: Count


class RoundPaused(WatchdogEvent, frozen=True, kw_only=True):
    """The limit is reached: the task is blocked `max_rounds` until `extend_rounds`."""

    name: ClassVar[str] = "round_paused"
    round: Count
    max_rounds: Count
    notify: Annotated[list[Id], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)


class BacklogNoticed(WatchdogEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "backlog_noticed"
    count: Count
    limit: Count


class AnalystWoken(WatchdogEvent, frozen=True, kw_only=True):
    """`root_cause_requested` handed to the analyst agent with the task's last run logs."""

    name: ClassVar[str] = "analyst_woken"
    analyst: Id
    failures: Count
    run_ids: Annotated[list[Id], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)


class HeartbeatScheduled(WatchdogEvent, frozen=True, kw_only=True):
    """A cron heartbeat of the agent's class came due: woken, or skipped with the reason."""

    name: ClassVar[str] = "heartbeat_scheduled"
    due_at: Instant
    outcome: Literal["woken", "skipped"]


WatchdogEvents = (
    Suspected | TimedOut | Stuck | DependencyWaited | RoundWarned | RoundPaused | BacklogNoticed
    | AnalystWoken | HeartbeatScheduled
)
