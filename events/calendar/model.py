"""The calendar's events: what a claw synced, what fell due, whom it woke or why not.

Two kinds of aggregate share the CALENDAR stream:
- `calendar.<claw_identifier>.<event>`: one claw's sync with its calendar backend (`synced`,
  `sync_failed`, `resynced`);
- `calendar.<agent_id>.<event>`: one agent's slots, both the copy a claw synced (`slot_added`,
  `slot_updated`, `slot_removed`, written by the scheduler, each naming its claw) and the slots
  agentledger keeps as a calendar backend itself (`slot_created`, `slot_changed`, `slot_deleted`,
  written through the calendar API), plus due slots and their one outcome (`slot_due`,
  `wake_sent`, `wake_skipped`) and the agent's status reports.

The synced copy and the built-in calendar are separate event names on purpose: one agentledger can
be a claw syncing from itself, and its copy must never be mistaken for the original.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec

from events.core.bounds import INT64_MAX
from events.core.policy import Writers, writers
from events.core.registry import Event

Text = Annotated[str, msgspec.Meta(max_length=2000)]
Short = Annotated[str, msgspec.Meta(max_length=200)]
Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
SlotKey = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Day = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$", max_length=10)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
SlotStatus = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Channel = Literal["command", "nats", "webhook"]
SkipReason = Literal["agent_busy", "cooling_down", "unknown_agent", "outside_window", "wake_failed"]
PENDING = ("not_started", "deferred")
WAKE_MESSAGE = (
    "You have due slots. Follow the `hf-wakeup` workflow of skill `hf-hangman-lab` to proceed. "
    "Only reply `WAKEUP_OK` in this session."
)


def session_key(agent_id: str) -> str:
    """The seed's wake session: every wake of one agent continues the same conversation."""
    return f"agent:{agent_id}:hf-wakeup"


class Slot(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A slot as the seed's backend sends it; `scheduled_at` is `HH:MM[:SS]` on the schedule's
    date or an ISO date-time. `estimated_duration` is in minutes."""

    id: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] | None = None
    virtual_id: Short | None = None
    slot_type: Short = "work"
    estimated_duration: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 60)] = 0
    scheduled_at: Annotated[str, msgspec.Meta(min_length=4, max_length=64)]
    status: SlotStatus = "not_started"
    priority: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] = 0
    event_type: Short | None = None
    event_data: Annotated[dict[Short, Any], msgspec.Meta(max_length=200)] | None = None

    @property
    def key(self) -> str:
        """What diffs call `slotId`: the real id, or the virtual id of a slot not stored yet."""
        return str(self.id) if self.id is not None else (self.virtual_id or "")


# --- a claw's sync ------------------------------------------------------------------------


class CalendarEvent(Event, frozen=True, kw_only=True):
    domain: ClassVar[str] = "calendar"
    writers: ClassVar[Writers] = writers("scheduler")
    written_by: ClassVar[str] = "the scheduler service"


class ScheduleSynced(CalendarEvent, frozen=True, kw_only=True):
    """A sync answer applied: a full one carries the whole schedule, a diff only the token (its
    slot changes are the `slot_*` events appended in the same atomic batch)."""

    name: ClassVar[str] = "synced"
    full: bool
    token: Token
    date: Day | None = None
    schedules: Annotated[dict[Id, Annotated[list[Slot], msgspec.Meta(max_length=1000)]], msgspec.Meta(max_length=1000)] | None = None
    changes: Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)] = 0


class SyncFailed(CalendarEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "sync_failed"
    error: Text
    status: Annotated[int, msgspec.Meta(ge=0, le=999)] | None = None
    attempt: Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)] = 1


class Resynced(CalendarEvent, frozen=True, kw_only=True):
    """The token was given up and a full sync follows: `gone` (410), `unknown_token`, `bad_diff`."""

    name: ClassVar[str] = "resynced"
    reason: Literal["gone", "unknown_token", "bad_diff", "date_changed"]
    detail: Text = ""


# --- the synced copy of one agent's slots -------------------------------------------------


class SlotAdded(CalendarEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "slot_added"
    claw: Id
    slot: Slot


class SlotUpdated(CalendarEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "slot_updated"
    claw: Id
    slot_id: SlotKey
    patch: Annotated[dict[Short, Any], msgspec.Meta(max_length=50)]


class SlotRemoved(CalendarEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "slot_removed"
    claw: Id
    slot_id: SlotKey


# --- due slots and their one outcome ------------------------------------------------------


DueAt = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$", max_length=20)]


class _DueChecked(msgspec.Struct, frozen=True, kw_only=True):
    """`due_at` is a real instant (the read model keys wakes by it), not only the right shape."""

    due_at: DueAt

    def __post_init__(self) -> None:
        try:
            datetime.fromisoformat(self.due_at)
        except ValueError:
            raise ValueError(f"due_at {self.due_at!r} is not a real instant - at `$.due_at`") from None


class SlotDue(_DueChecked, CalendarEvent, frozen=True, kw_only=True):
    """Recorded before the wake, so a crash between the two leaves a due slot without an
    outcome, which the restarted scheduler handles again."""

    name: ClassVar[str] = "slot_due"
    slot_id: SlotKey
    due_at: DueAt
    priority: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] = 0


class WakeSent(_DueChecked, CalendarEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "wake_sent"
    slot_id: SlotKey
    due_at: DueAt
    channel: Channel
    session: Text


class WakeSkipped(_DueChecked, CalendarEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "wake_skipped"
    slot_id: SlotKey
    due_at: DueAt
    reason: SkipReason
    detail: Text = ""


class StatusForwarded(CalendarEvent, frozen=True, kw_only=True):
    """A status report (`report_seq`) passed on to the claw's backend, which answered `status`."""

    name: ClassVar[str] = "status_forwarded"
    report_seq: Annotated[int, msgspec.Meta(ge=1, le=INT64_MAX)]
    ok: bool
    http_status: Annotated[int, msgspec.Meta(ge=0, le=999)] | None = None
    error: Text = ""


# --- the agent's own report ---------------------------------------------------------------


class SlotStatusReported(CalendarEvent, frozen=True, kw_only=True):
    """The agent says where it is: its status (`busy`, `idle`, ...) and, when about one slot,
    that slot's status. `claw` is set when a claw forwarded it to this backend (so a claw
    syncing from itself does not forward it again)."""

    name: ClassVar[str] = "slot_status_reported"
    writers: ClassVar[Writers] = writers("agent:self", "scheduler")
    written_by: ClassVar[str] = "the agent itself (its own slots) or the scheduler service"
    status: SlotStatus
    slot_id: SlotKey | None = None
    slot_status: SlotStatus | None = None
    claw: Id | None = None


# --- agentledger as the calendar backend --------------------------------------------------


class BackendEvent(CalendarEvent, frozen=True, kw_only=True):
    writers: ClassVar[Writers] = writers("admin", "gateway")
    written_by: ClassVar[str] = "the admin or the gateway's calendar API"


class SlotCreated(BackendEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "slot_created"
    date: Day
    slot: Slot
    claw: Id | None = None


class SlotChanged(BackendEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "slot_changed"
    slot_id: SlotKey
    patch: Annotated[dict[Short, Any], msgspec.Meta(max_length=50)]


class SlotDeleted(BackendEvent, frozen=True, kw_only=True):
    name: ClassVar[str] = "slot_deleted"
    slot_id: SlotKey


SYNCED_SLOT = (SlotAdded, SlotUpdated, SlotRemoved)
BACKEND_SLOT = (SlotCreated, SlotChanged, SlotDeleted)
