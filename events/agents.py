"""The agents aggregate: who the agents are, how they are configured, and what they last said.

Invariants:
- an agent id is a valid aggregate id; the subject carries it, never the payload;
- registration happens once; later changes are `updated` events that only touch the fields they name;
- a heartbeat is always a fact: an agent that was never registered becomes known by its heartbeat
  (class unknown) so nothing an agent reports is lost;
- `status_changed` only records real changes: the same status twice is a no-op with a reason;
- per-class timing defaults (DESIGN §6) are written into the registration event itself, so a later
  change of the defaults never rewrites history;
- a cooldown (after a 429) is never shortened: a `cooldown_started` ending no later than the active
  one is a no-op; `cooldown_ended` only ends an active cooldown; `woken` records each wake.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal, NamedTuple, assert_never

import msgspec
from msgspec.structs import force_setattr, replace

from events.core.bounds import Count, Instant, Label, Text, integer
from events.core.policy import Writers, writers
from events.core.registry import Event

Status = Literal["idle", "busy", "offline", "exhausted"]
AgentClass = Literal["high_frequency", "dev", "business"]
Seconds = integer(ge=1)
Limit = integer(ge=1)


class ClassDefaults(NamedTuple):
    heartbeat_interval_s: int
    stall_warning_s: int
    recovery_s: int
    max_rounds: int
    dependency_wait_s: int


CLASS_DEFAULTS: dict[str, ClassDefaults] = {
    "high_frequency": ClassDefaults(600, 1200, 1800, 50, 3600),
    "dev": ClassDefaults(900, 1800, 2700, 100, 7200),
    "business": ClassDefaults(900, 1800, 2700, 30, 7200),
}
ROUND_WARNING_RATIO = 0.8


# --- events ---------------------------------------------------------------------------------


class AgentEvent(Event, frozen=True, kw_only=True):
    """Facts an agent states about itself, unless an event says otherwise."""

    domain: ClassVar[str] = "agents"
    writers: ClassVar[Writers] = writers("agent:self", "admin")


class AgentRegistered(AgentEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "registered"
    display_name: Label | None = None
    agent_class: AgentClass = msgspec.field(default="dev", name="class")
    claw_id: Label | None = None
    concurrency_limit: Limit = 1
    heartbeat_interval_s: Seconds | None = None
    stall_warning_s: Seconds | None = None
    recovery_s: Seconds | None = None
    max_rounds: Seconds | None = None
    dependency_wait_s: Seconds | None = None

    def __post_init__(self) -> None:
        defaults = CLASS_DEFAULTS[self.agent_class]
        for field, value in defaults._asdict().items():
            if getattr(self, field) is None:
                force_setattr(self, field, value)


class AgentUpdated(AgentEvent, frozen=True, kw_only=True):
    """Only the fields given change; None means "leave as it is"."""

    name: ClassVar[str] = "updated"
    display_name: Label | None = None
    agent_class: AgentClass | None = msgspec.field(default=None, name="class")
    claw_id: Label | None = None
    concurrency_limit: Limit | None = None
    heartbeat_interval_s: Seconds | None = None
    stall_warning_s: Seconds | None = None
    recovery_s: Seconds | None = None
    max_rounds: Seconds | None = None
    dependency_wait_s: Seconds | None = None


class AgentHeartbeat(AgentEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "heartbeat"
    status: Status
    current_task: Label | None = None
    round: Count | None = None
    note: Text | None = None


class AgentStatusChanged(AgentEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "status_changed"
    status: Status
    previous: Status | None = None
    reason: Text | None = None


class AgentCooldownStarted(AgentEvent, frozen=True, kw_only=True):
    """The dispatcher will not wake the agent before `until` (a 429 from its provider)."""

    name: ClassVar[str] = "cooldown_started"
    writers: ClassVar[Writers] = writers("dispatcher", "admin")
    until: Instant
    reason: Text
    task_id: Label | None = None


class AgentCooldownEnded(AgentEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "cooldown_ended"
    writers: ClassVar[Writers] = writers("dispatcher", "admin")
    reason: Text | None = None


class AgentWoken(AgentEvent, frozen=True, kw_only=True):
    """The dispatcher woke the agent: `via` command | nats | webhook, for a task or for mail."""

    name: ClassVar[str] = "woken"
    writers: ClassVar[Writers] = writers("dispatcher", "watchdog", "scheduler", "admin")
    via: Literal["command", "nats", "webhook"]
    task_id: Label | None = None
    session_id: Label | None = None
    continuation: Count = 0
    reason: Text | None = None


AgentEvents = (
    AgentRegistered | AgentUpdated | AgentHeartbeat | AgentStatusChanged | AgentCooldownStarted
    | AgentCooldownEnded | AgentWoken
)


# --- commands -------------------------------------------------------------------------------


class Register(msgspec.Struct, frozen=True, kw_only=True):
    event: AgentRegistered


class Update(msgspec.Struct, frozen=True, kw_only=True):
    event: AgentUpdated


class ReportHeartbeat(msgspec.Struct, frozen=True, kw_only=True):
    event: AgentHeartbeat


class ChangeStatus(msgspec.Struct, frozen=True, kw_only=True):
    status: Status
    reason: Text | None = None


class StartCooldown(msgspec.Struct, frozen=True, kw_only=True):
    until: Instant
    reason: Text
    task_id: Label | None = None


class EndCooldown(msgspec.Struct, frozen=True, kw_only=True):
    reason: Text | None = None


class RecordWake(msgspec.Struct, frozen=True, kw_only=True):
    event: AgentWoken


AgentCommand = Register | Update | ReportHeartbeat | ChangeStatus | StartCooldown | EndCooldown | RecordWake


# --- state ----------------------------------------------------------------------------------


class Agent(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    registered: bool = False
    display_name: str | None = None
    agent_class: str | None = None
    claw_id: str | None = None
    concurrency_limit: int = 1
    heartbeat_interval_s: int | None = None
    stall_warning_s: int | None = None
    recovery_s: int | None = None
    max_rounds: int | None = None
    dependency_wait_s: int | None = None
    registered_at: datetime | None = None
    status: str | None = None
    status_since: datetime | None = None
    last_heartbeat_at: datetime | None = None
    current_task: str | None = None
    round: int | None = None
    note: str | None = None
    heartbeats: int = 0
    cooldown_until: datetime | None = None
    last_woken_at: datetime | None = None


# --- errors ---------------------------------------------------------------------------------


class AgentRuleError(Exception):
    """Root of the agents rules; the message names the agent."""


class AlreadyRegistered(AgentRuleError):
    pass


class NotRegistered(AgentRuleError):
    pass


# --- decider --------------------------------------------------------------------------------

_CONFIG_FIELDS = (
    "display_name", "agent_class", "claw_id", "concurrency_limit", "heartbeat_interval_s",
    "stall_warning_s", "recovery_s", "max_rounds", "dependency_wait_s",
)


def initial_state(agent_id: str) -> Agent:
    return Agent(id=agent_id)


def decide(cmd: AgentCommand, state: Agent, now: datetime) -> list[AgentEvent]:
    match cmd:
        case Register(event=ev):
            if state.registered:
                raise AlreadyRegistered(f"agent {state.id} is already registered")
            return [ev]
        case Update(event=ev):
            if not state.registered:
                raise NotRegistered(f"agent {state.id} is not registered")
            if all(getattr(ev, f) in (None, getattr(state, f)) for f in _CONFIG_FIELDS):
                return []
            return [ev]
        case ReportHeartbeat(event=ev):
            if state.status is None or state.status == ev.status:
                return [ev]
            # the change first: folded after the heartbeat it would find the status already moved
            return [AgentStatusChanged(status=ev.status, previous=state.status, reason="heartbeat"), ev]
        case ChangeStatus(status=status, reason=reason):
            if state.status == status:
                return []
            return [AgentStatusChanged(status=status, previous=state.status, reason=reason)]
        case StartCooldown(until=until, reason=reason, task_id=task):
            if state.cooldown_until is not None and state.cooldown_until >= until:
                return []  # never shorten an active cooldown
            return [AgentCooldownStarted(until=until, reason=reason, task_id=task)]
        case EndCooldown(reason=reason):
            if state.cooldown_until is None:
                return []
            return [AgentCooldownEnded(reason=reason)]
        case RecordWake(event=ev):
            return [ev]
        case _:
            assert_never(cmd)


def evolve(state: Agent, event: AgentEvent, at: datetime) -> tuple[Agent, str | None]:
    """Fold one event; returns the new state and, when the event changed nothing, why."""
    match event:
        case AgentRegistered():
            if state.registered:
                return state, f"agent {state.id} is already registered"
            return replace(
                state, registered=True, registered_at=at,
                **{f: getattr(event, f) for f in _CONFIG_FIELDS},
            ), None
        case AgentUpdated():
            if not state.registered:
                return state, f"agent {state.id} is not registered"
            changes = {f: v for f in _CONFIG_FIELDS if (v := getattr(event, f)) is not None}
            return replace(state, **changes), None
        case AgentHeartbeat():
            since = state.status_since if state.status == event.status else at
            return replace(
                state, status=event.status, status_since=since, last_heartbeat_at=at,
                current_task=event.current_task, round=event.round, note=event.note,
                heartbeats=state.heartbeats + 1,
            ), None
        case AgentStatusChanged():
            if state.status == event.status:
                return state, f"agent {state.id} is already {event.status}"
            return replace(state, status=event.status, status_since=at), None
        case AgentCooldownStarted():
            if state.cooldown_until is not None and state.cooldown_until >= event.until:
                return state, f"agent {state.id} is already cooling down until {state.cooldown_until.isoformat()}"
            return replace(state, cooldown_until=event.until), None
        case AgentCooldownEnded():
            if state.cooldown_until is None:
                return state, f"agent {state.id} is not cooling down"
            return replace(state, cooldown_until=None), None
        case AgentWoken():
            return replace(state, last_woken_at=at), None
        case _:
            return state, f"unhandled event {type(event).__name__}"
